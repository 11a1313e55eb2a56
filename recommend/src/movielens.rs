//! MovieLens interaction files in RecBole's atomic format (`ml-100k.inter`: a header line,
//! then `user<TAB>item<TAB>rating<TAB>timestamp`). Every rating counts as one implicit
//! interaction of strength 1.

use crate::{CsrMatrix, IdMap, RecommendError};

/// Interactions read from a file, with the original ids.
#[derive(Debug, Clone)]
pub struct Ratings {
    /// Original user ids by index.
    pub users: IdMap<String>,
    /// Original item ids by index.
    pub items: IdMap<String>,
    /// Users × items, strength 1 per rating.
    pub interactions: CsrMatrix,
}

/// Parses the text of an atomic `.inter` file.
pub fn parse_inter(text: &str) -> Result<Ratings, RecommendError> {
    let mut users = IdMap::new();
    let mut items = IdMap::new();
    let mut cells = Vec::new();
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.starts_with("user_id") => {}
        _ => {
            return Err(RecommendError::Parse {
                line: 1,
                message: "expected a user_id… header".into(),
            });
        }
    }
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split('\t');
        let (Some(user), Some(item)) = (fields.next(), fields.next()) else {
            return Err(RecommendError::Parse {
                line: n + 1,
                message: "fewer than two fields".into(),
            });
        };
        if user.is_empty() || item.is_empty() {
            return Err(RecommendError::Parse {
                line: n + 1,
                message: "empty id".into(),
            });
        }
        let u = users.intern(user.to_string());
        let i = items.intern(item.to_string());
        cells.push((u, i, 1.0));
    }
    let interactions = CsrMatrix::from_triplets(users.len(), items.len(), &cells)?;
    Ok(Ratings {
        users,
        items,
        interactions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_header_and_rows() {
        let text = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t302\t1\t1\n";
        let r = parse_inter(text).unwrap();
        assert_eq!(
            (r.users.len(), r.items.len(), r.interactions.nnz()),
            (2, 2, 3)
        );
        let u = r.users.get(&"196".to_string()).unwrap() as usize;
        assert_eq!(r.interactions.row(u).0.len(), 2);
    }

    #[test]
    fn reports_the_bad_line() {
        let text = "user_id:token\titem_id:token\n1\t2\nbroken\n";
        assert_eq!(
            parse_inter(text).unwrap_err(),
            RecommendError::Parse {
                line: 3,
                message: "fewer than two fields".into()
            }
        );
        assert!(parse_inter("no header\n").is_err());
    }
}
