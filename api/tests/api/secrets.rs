//! AppSecret and EncodingAESKey: write-only, encrypted at rest, never in the audit log.

use sea_orm::{ConnectionTrait, Statement};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use wxpilot_core::SecretBox;
use wxpilot_core::service::{Actor, accounts};

use crate::both;
use crate::helpers::*;

async fn secrets_are_write_only_and_sealed(app: TestApp) {
    let t = app.tenant("Secrets").await;
    let created = app.create_account(&t.owner_key, "wx2c2769f8efd9abc2").await;
    let id = created["id"].as_str().unwrap().to_owned();
    let get_text = app
        .get(&format!("/v1/accounts/{id}"), &t.owner_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let list_text = app
        .get("/v1/accounts", &t.owner_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for text in [created.to_string(), get_text.clone(), list_text] {
        assert!(!text.contains(APP_SECRET), "AppSecret leaked: {text}");
        assert!(!text.contains(AES_KEY), "EncodingAESKey leaked: {text}");
    }
    let got: Value = serde_json::from_str(&get_text).unwrap();
    assert!(got.get("app_secret").is_none() && got.get("encoding_aes_key").is_none());
    assert_eq!(got["app_secret_set"], true);

    // Rotate both secrets through the API.
    let new_secret = "ffffffffffffffffffffffffffffffff";
    let res = app
        .patch(
            &format!("/v1/accounts/{id}"),
            &t.owner_key,
            &json!({"app_secret": new_secret}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(!res.text().await.unwrap().contains(new_secret));

    // The raw row holds ciphertext only.
    let row = app
        .db
        .query_one_raw(Statement::from_sql_and_values(
            app.db.get_database_backend(),
            match app.backend {
                Backend::Sqlite => "SELECT app_secret_enc, encoding_aes_key_enc FROM official_accounts WHERE id = ?",
                Backend::Postgres => "SELECT app_secret_enc, encoding_aes_key_enc FROM official_accounts WHERE id = $1",
            },
            [id.clone().into()],
        ))
        .await
        .unwrap()
        .unwrap();
    let secret_enc: String = row.try_get("", "app_secret_enc").unwrap();
    let key_enc: String = row.try_get("", "encoding_aes_key_enc").unwrap();
    for enc in [&secret_enc, &key_enc] {
        assert!(enc.starts_with("wxs1:"), "{enc}");
        assert!(!enc.contains(APP_SECRET) && !enc.contains(new_secret) && !enc.contains(AES_KEY));
    }
    // …which opens to the values sent, under the server's key only.
    let secrets = SecretBox::new(app.master_key(), vec![]);
    let creds = accounts::credentials(&app.db, &secrets, &Actor::cli(&t.id), &id)
        .await
        .unwrap();
    assert_eq!(creds.app_secret.expose_secret(), new_secret);
    assert_eq!(creds.encoding_aes_key.expose_secret(), AES_KEY);
    let other = SecretBox::new(wxpilot_core::MasterKey::generate(), vec![]);
    assert!(
        accounts::credentials(&app.db, &other, &Actor::cli(&t.id), &id)
            .await
            .is_err()
    );

    // The audit log records that secrets changed, never their values.
    let audit = app
        .get("/v1/audit-events", &t.owner_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(audit.contains("[redacted]"));
    assert!(!audit.contains(APP_SECRET) && !audit.contains(new_secret) && !audit.contains(AES_KEY));

    // A dump of the whole embedded database (file and WAL) holds no plaintext secret.
    if let Some(path) = &app.sqlite_path {
        let mut dump = std::fs::read(path).unwrap();
        if let Ok(wal) = std::fs::read(path.with_extension("db-wal")) {
            dump.extend(wal);
        }
        for secret in [APP_SECRET, new_secret, AES_KEY] {
            assert!(
                !dump.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} found in the database file"
            );
        }
    }
}
both!(secrets_are_write_only_and_sealed);

/// Rotation re-seals every secret under the new key, reading old ones with the previous
/// key; it can run again safely, and afterwards the old key alone opens nothing.
async fn master_key_rotation(app: TestApp) {
    use wxpilot_core::MasterKey;
    use wxpilot_core::service::rotation::rotate_master_key;
    let t = app.tenant("Rotation").await;
    let id = app.create_account(&t.owner_key, "wx2c2769f8efd9abc2").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .post(
            "/v1/webhooks",
            &t.owner_key,
            &json!({"url": "https://hooks.example.cn/x", "events": ["job.dead"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    let new_key = MasterKey::generate();
    let new_text = new_key.to_base64();
    let rotating = SecretBox::new(new_key, vec![app.master_key()]);
    let report = rotate_master_key(&app.db, &rotating).await.unwrap();
    assert_eq!((report.resealed, report.already_current), (3, 0));
    let again = rotate_master_key(&app.db, &rotating).await.unwrap();
    assert_eq!(
        (again.resealed, again.already_current),
        (0, 3),
        "idempotent"
    );

    let only_new = SecretBox::new(
        MasterKey::from_base64(new_text.expose_secret()).unwrap(),
        vec![],
    );
    let creds = accounts::credentials(&app.db, &only_new, &Actor::cli(&t.id), &id)
        .await
        .unwrap();
    assert_eq!(creds.app_secret.expose_secret(), APP_SECRET);
    assert_eq!(creds.encoding_aes_key.expose_secret(), AES_KEY);
    let only_old = SecretBox::new(app.master_key(), vec![]);
    assert!(
        accounts::credentials(&app.db, &only_old, &Actor::cli(&t.id), &id)
            .await
            .is_err()
    );

    // Without the old key the rotation cannot read what it must re-seal, and says so.
    let fresh = SecretBox::new(MasterKey::generate(), vec![]);
    let err = rotate_master_key(&app.db, &fresh).await.unwrap_err();
    assert!(
        err.to_string().contains("previous_master_keys")
            || format!("{err:?}").contains("previous_master_keys"),
        "{err:?}"
    );
}
both!(master_key_rotation);
