//! The documented routes as path templates, so a request for a known path with the wrong
//! method answers 405 with `Allow` instead of a bare 404.

use utoipa::openapi::OpenApi;

/// Path templates (`/v1/accounts/{id}`) and the methods each answers.
#[derive(Debug, Clone, Default)]
pub struct RouteTable(Vec<(Vec<String>, Vec<&'static str>)>);

impl RouteTable {
    /// The table of a document.
    pub fn from_document(doc: &OpenApi) -> Self {
        let routes = doc
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let mut methods = Vec::new();
                for (name, present) in [
                    ("GET", item.get.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("DELETE", item.delete.is_some()),
                ] {
                    if present {
                        methods.push(name);
                    }
                }
                (segments(path), methods)
            })
            .collect();
        Self(routes)
    }

    /// The methods of the route `path` matches, if any.
    pub fn allowed(&self, path: &str) -> Option<Vec<&'static str>> {
        let parts = segments(path);
        self.0
            .iter()
            .find(|(template, _)| {
                template.len() == parts.len()
                    && template
                        .iter()
                        .zip(&parts)
                        .all(|(t, p)| (t.starts_with('{') && t.ends_with('}')) || t == p)
            })
            .map(|(_, methods)| methods.clone())
    }
}

fn segments(path: &str) -> Vec<String> {
    path.trim_end_matches('/')
        .split('/')
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_paths_report_their_methods() {
        let table = RouteTable::from_document(&crate::openapi::document());
        assert_eq!(table.allowed("/v1/accounts"), Some(vec!["GET", "POST"]));
        assert_eq!(
            table.allowed("/v1/accounts/01JZZZ"),
            Some(vec!["GET", "PATCH", "DELETE"])
        );
        assert_eq!(table.allowed("/v1/jobs/01JZZZ/cancel"), Some(vec!["POST"]));
        assert_eq!(table.allowed("/v1/nothing"), None);
        assert_eq!(table.allowed("/v1/accounts/a/b"), None);
    }
}
