//! The key manager (Barbican v1 subset) through the whole API router:
//! payloads in and out as Barbican's clients send and read them, sealing at
//! rest, Barbican's errors, and who may see what (projects, ACLs, roles).

#[path = "octavia/support.rs"]
mod support;

use serde_json::{Value, json};
use statera_model::keymanager::Secret;
use support::*;
use uuid::Uuid;

const A: &str = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
const B: &str = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";
const KM: &str = "/key-manager/v1";

/// A caller: project, user, roles.
#[derive(Clone, Copy)]
struct Who(&'static str, &'static str, &'static str);

const ALICE: Who = Who(A, "alice", "member,reader");
const ALBERT: Who = Who(A, "albert", "member,reader");
const AUDREY: Who = Who(A, "audrey", "reader");
const BOB: Who = Who(B, "bob", "member,reader");
const BERTA_ADMIN: Who = Who(B, "berta", "admin,member,reader");

async fn send(
    h: &Harness,
    who: Who,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> Resp {
    let mut hs = vec![
        ("x-project-id", who.0),
        ("x-user-id", who.1),
        ("x-roles", who.2),
    ];
    hs.extend_from_slice(headers);
    h.raw(method, path, &hs, body).await
}

async fn json_req(h: &Harness, who: Who, method: &str, path: &str, body: Value) -> Resp {
    send(h, who, method, path, &[], Some(body.to_string())).await
}

async fn get(h: &Harness, who: Who, path: &str, accept: &str) -> Resp {
    send(h, who, "GET", path, &[("accept", accept)], None).await
}

/// Barbican's error shape, with `needle` in the description.
#[track_caller]
fn barbican_error(r: Resp, status: u16, needle: &str) {
    let r = r.expect(status);
    let mut keys: Vec<&String> = r.body.as_object().expect("an object").keys().collect();
    keys.sort();
    assert_eq!(keys, ["code", "description", "title"], "{}", r.text);
    assert_eq!(r.body["code"], status);
    let d = r.body["description"].as_str().unwrap_or_default();
    assert!(d.contains(needle), "description {d:?} lacks {needle:?}");
}

fn id_of(reference: &Value) -> String {
    reference
        .as_str()
        .expect("a ref")
        .rsplit('/')
        .next()
        .unwrap()
        .to_string()
}

async fn store_text(h: &Harness, who: Who, name: &str, payload: &str) -> String {
    let r = json_req(
        h,
        who,
        "POST",
        &format!("{KM}/secrets"),
        json!({"name": name, "payload": payload, "payload_content_type": "text/plain"}),
    )
    .await
    .expect(201);
    id_of(&r.body["secret_ref"])
}

#[tokio::test]
async fn secrets_round_trip_sealed_at_rest() {
    let h = Harness::new().await;
    let r = json_req(
        &h,
        ALICE,
        "POST",
        &format!("{KM}/secrets"),
        json!({"name": " s1 ", "payload": "  the text payload\n", "payload_content_type": "text/plain",
               "algorithm": "aes", "bit_length": 256, "mode": "cbc", "secret_type": "passphrase"}),
    )
    .await
    .expect(201);
    let reference = r.body["secret_ref"].as_str().unwrap().to_string();
    assert!(reference.starts_with("http://statera.test:9876/key-manager/v1/secrets/"));
    assert_eq!(r.headers["location"], reference.as_str());
    let id = id_of(&r.body["secret_ref"]);

    // Metadata: exactly Barbican's keys (the client refuses others);
    // consumers only from microversion 1.1.
    let m = get(&h, ALICE, &format!("{KM}/secrets/{id}"), "application/json")
        .await
        .expect(200);
    assert_fields(
        &m.body,
        &[
            "algorithm",
            "bit_length",
            "content_types",
            "created",
            "creator_id",
            "expiration",
            "mode",
            "name",
            "secret_ref",
            "secret_type",
            "status",
            "updated",
        ],
    );
    assert_eq!(m.body["name"], "s1", "strings are stripped");
    assert_eq!(m.body["creator_id"], "alice");
    assert_eq!(m.body["content_types"]["default"], "text/plain");
    assert_eq!(m.headers["openstack-api-version"], "key-manager 1.0");
    let m = send(
        &h,
        ALICE,
        "GET",
        &format!("{KM}/secrets/{id}"),
        &[("openstack-api-version", "key-manager 1.1")],
        None,
    )
    .await
    .expect(200);
    assert_eq!(m.body["consumers"], json!([]));

    // The payload as asked: text, anything, bytes.
    let p = get(
        &h,
        ALICE,
        &format!("{KM}/secrets/{id}/payload"),
        "text/plain",
    )
    .await
    .expect(200);
    assert_eq!(p.text, "the text payload");
    assert_eq!(p.headers["content-type"], "text/plain");
    let p = get(&h, ALICE, &format!("{KM}/secrets/{id}/payload"), "*/*")
        .await
        .expect(200);
    assert_eq!(p.text, "the text payload");
    // The deprecated form: the secret's URL with a payload type.
    let p = get(
        &h,
        ALICE,
        &format!("{KM}/secrets/{id}"),
        "application/octet-stream",
    )
    .await
    .expect(200);
    assert_eq!(p.text, "the text payload");
    barbican_error(
        get(
            &h,
            ALICE,
            &format!("{KM}/secrets/{id}/payload"),
            "image/png",
        )
        .await,
        406,
        "Wrong payload content-type.",
    );

    // Binary, base64 on the way in, raw bytes out; not UTF-8 so not text.
    let bytes: Vec<u8> = (0u8..=255).collect();
    let b64 = base64_encode(&bytes);
    let r = json_req(
        &h,
        ALICE,
        "POST",
        &format!("{KM}/secrets/"),
        json!({"payload": b64, "payload_content_type": "application/octet-stream",
               "payload_content_encoding": "base64"}),
    )
    .await
    .expect(201);
    let bin = id_of(&r.body["secret_ref"]);
    let raw = h
        .raw(
            "GET",
            &format!("{KM}/secrets/{bin}/payload"),
            &[
                ("x-project-id", A),
                ("x-user-id", "alice"),
                ("x-roles", "member"),
                ("accept", "application/octet-stream"),
            ],
            None,
        )
        .await
        .expect(200);
    assert_eq!(raw.headers["content-type"], "application/octet-stream");
    assert_eq!(raw.text.len(), String::from_utf8_lossy(&bytes).len());
    barbican_error(
        get(
            &h,
            ALICE,
            &format!("{KM}/secrets/{bin}/payload"),
            "text/plain",
        )
        .await,
        406,
        "Wrong payload content-type.",
    );

    // At rest: sealed, bound to the secret (the store never holds clear text).
    let snap = h.store.snapshot();
    let s = snap.get::<Secret>(&Uuid::parse_str(&id).unwrap()).unwrap();
    let sealed = s.payload.as_ref().expect("sealed");
    assert!(!sealed.ciphertext.contains("the text payload"));
    let doc = serde_json::to_string(s.as_ref()).unwrap();
    assert!(!doc.contains("the text payload"));

    // Delete: gone, 404 in Barbican's shape.
    send(
        &h,
        ALICE,
        "DELETE",
        &format!("{KM}/secrets/{id}"),
        &[],
        None,
    )
    .await
    .expect(204);
    barbican_error(
        get(&h, ALICE, &format!("{KM}/secrets/{id}"), "application/json").await,
        404,
        "Secret not found.",
    );
    barbican_error(
        get(
            &h,
            ALICE,
            &format!("{KM}/secrets/not-a-uuid"),
            "application/json",
        )
        .await,
        404,
        "Provided secret id is invalid.",
    );
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[tokio::test]
async fn two_step_payload_once() {
    let h = Harness::new().await;
    let r = json_req(
        &h,
        ALICE,
        "POST",
        &format!("{KM}/secrets"),
        json!({"name": "later"}),
    )
    .await
    .expect(201);
    let id = id_of(&r.body["secret_ref"]);
    let m = get(&h, ALICE, &format!("{KM}/secrets/{id}"), "application/json")
        .await
        .expect(200);
    assert!(m.body.get("content_types").is_none());
    barbican_error(
        get(
            &h,
            ALICE,
            &format!("{KM}/secrets/{id}/payload"),
            "text/plain",
        )
        .await,
        404,
        "Sorry but your secret has no payload.",
    );
    let put = |ct: &'static str, enc: Option<&'static str>, body: &'static str| {
        let h = &h;
        let path = format!("{KM}/secrets/{id}");
        async move {
            let mut hs = vec![("content-type", ct)];
            if let Some(e) = enc {
                hs.push(("content-encoding", e));
            }
            send(h, ALICE, "PUT", &path, &hs, Some(body.to_string())).await
        }
    };
    barbican_error(
        put("application/json", None, "{}").await,
        415,
        "is not supported for PUT",
    );
    barbican_error(
        put("image/png", None, "x").await,
        415,
        "Expected content types",
    );
    barbican_error(
        put("application/octet-stream", Some("gzip"), "x").await,
        400,
        "base64",
    );
    put("application/octet-stream", Some("base64"), "aGVsbG8=")
        .await
        .expect(204);
    barbican_error(
        put("text/plain", None, "again").await,
        409,
        "already has data",
    );
    let p = get(&h, ALICE, &format!("{KM}/secrets/{id}/payload"), "*/*")
        .await
        .expect(200);
    assert_eq!(p.text, "hello");
    assert_eq!(p.headers["content-type"], "application/octet-stream");
}

#[tokio::test]
async fn bad_input_is_refused_in_barbicans_words() {
    let h = Harness::new().await;
    let secrets = format!("{KM}/secrets");
    let post = |body: Value| json_req(&h, ALICE, "POST", &secrets, body);
    barbican_error(
        post(json!({"payload": "x"})).await,
        400,
        "'payload_content_type' must also be supplied",
    );
    barbican_error(
        post(json!({"payload": "x", "payload_content_type": "image/png"})).await,
        400,
        "payload_content_type is not one of",
    );
    barbican_error(
        post(json!({"payload": "x", "payload_content_type": "application/octet-stream"})).await,
        400,
        "payload_content_encoding",
    );
    barbican_error(
        post(
            json!({"payload": "!!", "payload_content_type": "application/octet-stream",
                    "payload_content_encoding": "base64"}),
        )
        .await,
        400,
        "Invalid payload for payload_content_encoding",
    );
    barbican_error(
        post(json!({"payload": "  ", "payload_content_type": "text/plain"})).await,
        400,
        "must be non empty",
    );
    barbican_error(
        post(json!({"secret_type": "hologram"})).await,
        400,
        "Invalid property: 'secret_type'",
    );
    barbican_error(
        post(json!({"bit_length": 0})).await,
        400,
        "Invalid property: 'bit_length'",
    );
    barbican_error(
        post(json!({"expiration": "2001-01-01T00:00:00"})).await,
        400,
        "'expiration' is before current time",
    );
    barbican_error(
        post(json!({"expiration": "soon"})).await,
        400,
        "Invalid date for 'expiration'",
    );
    barbican_error(
        post(json!({"payload": "x".repeat(20_001), "payload_content_type": "text/plain"})).await,
        413,
        "too large",
    );
    barbican_error(
        send(
            &h,
            ALICE,
            "POST",
            &format!("{KM}/secrets"),
            &[],
            Some("{not json".into()),
        )
        .await,
        400,
        "Malformed JSON",
    );
    barbican_error(
        send(
            &h,
            ALICE,
            "POST",
            &format!("{KM}/secrets"),
            &[("content-type", "text/plain")],
            Some("{}".into()),
        )
        .await,
        415,
        "application/json",
    );
    // Nothing was stored by any of them.
    let l = get(&h, ALICE, &format!("{KM}/secrets"), "application/json")
        .await
        .expect(200);
    assert_eq!(l.body["total"], 0);
}

#[tokio::test]
async fn an_expired_secret_is_not_found() {
    let h = Harness::new().await;
    let id = store_text(&h, ALICE, "old", "payload").await;
    let uuid = Uuid::parse_str(&id).unwrap();
    h.store
        .write(|txn| {
            let mut s = (**txn.state().get::<Secret>(&uuid).unwrap()).clone();
            s.expiration = Some(statera_model::now() - chrono::TimeDelta::seconds(1));
            txn.put(s)
        })
        .await
        .unwrap();
    barbican_error(
        get(
            &h,
            ALICE,
            &format!("{KM}/secrets/{id}/payload"),
            "text/plain",
        )
        .await,
        404,
        "Secret not found.",
    );
    let l = get(&h, ALICE, &format!("{KM}/secrets"), "application/json")
        .await
        .expect(200);
    assert_eq!(l.body["total"], 0);
}

#[tokio::test]
async fn projects_acls_and_roles() {
    let h = Harness::new().await;
    let id = store_text(&h, ALICE, "alices", "alice's key").await;
    let path = format!("{KM}/secrets/{id}");

    // Another project: exactly what a missing secret answers, everywhere.
    let missing = format!("{KM}/secrets/{}", Uuid::new_v4());
    for p in [path.clone(), missing.clone()] {
        barbican_error(
            get(&h, BOB, &p, "application/json").await,
            404,
            "Secret not found.",
        );
        barbican_error(
            get(&h, BOB, &format!("{p}/payload"), "text/plain").await,
            404,
            "Secret not found.",
        );
        barbican_error(
            send(&h, BOB, "DELETE", &p, &[], None).await,
            404,
            "Secret not found.",
        );
        barbican_error(
            get(&h, BOB, &format!("{p}/acl"), "application/json").await,
            404,
            "Secret not found.",
        );
    }
    // An admin of another project learns no more than a member.
    barbican_error(
        get(&h, BERTA_ADMIN, &path, "application/json").await,
        404,
        "Secret not found.",
    );
    let l = get(&h, BOB, &format!("{KM}/secrets"), "application/json")
        .await
        .expect(200);
    assert_eq!(l.body["total"], 0);
    // B cannot launder A's secret into a container of its own.
    barbican_error(
        json_req(
            &h,
            BOB,
            "POST",
            &format!("{KM}/containers"),
            json!({"type": "generic", "secret_refs": [
                {"name": "k", "secret_ref": format!("http://statera.test:9876{path}")}]}),
        )
        .await,
        404,
        "Secret provided for 'k' doesn't exist.",
    );

    // Alice gives Bob read access: he reads it (not lists it, not deletes it).
    json_req(
        &h,
        ALICE,
        "PUT",
        &format!("{path}/acl"),
        json!({"read": {"users": ["bob"]}}),
    )
    .await
    .expect(200);
    let acl = get(&h, ALICE, &format!("{path}/acl"), "application/json")
        .await
        .expect(200);
    assert_eq!(acl.body["read"]["users"], json!(["bob"]));
    assert_eq!(acl.body["read"]["project-access"], true);
    let p = get(&h, BOB, &format!("{path}/payload"), "text/plain")
        .await
        .expect(200);
    assert_eq!(p.text, "alice's key");
    barbican_error(
        send(&h, BOB, "DELETE", &path, &[], None).await,
        403,
        "Secret deletion attempt not allowed",
    );
    let l = get(
        &h,
        BOB,
        &format!("{KM}/secrets?acl_only=true"),
        "application/json",
    )
    .await
    .expect(200);
    assert_eq!(l.body["total"], 1);

    // Private: Albert (same project, not the creator) is refused; Alice and
    // Bob (on the ACL) still read it.
    json_req(
        &h,
        ALICE,
        "PATCH",
        &format!("{path}/acl"),
        json!({"read": {"project-access": false}}),
    )
    .await
    .expect(200);
    barbican_error(
        get(&h, ALBERT, &format!("{path}/payload"), "text/plain").await,
        403,
        "Secret payload retrieval attempt not allowed",
    );
    get(&h, ALICE, &format!("{path}/payload"), "text/plain")
        .await
        .expect(200);
    get(&h, BOB, &format!("{path}/payload"), "text/plain")
        .await
        .expect(200);
    // PATCH kept the users; DELETE resets to the project's default.
    let acl = get(&h, ALICE, &format!("{path}/acl"), "application/json")
        .await
        .expect(200);
    assert_eq!(acl.body["read"]["users"], json!(["bob"]));
    let d = send(&h, ALICE, "DELETE", &format!("{path}/acl"), &[], None)
        .await
        .expect(200);
    assert_eq!(d.body, Value::Null);
    barbican_error(
        get(&h, BOB, &path, "application/json").await,
        404,
        "Secret not found.",
    );
    get(&h, ALBERT, &format!("{path}/payload"), "text/plain")
        .await
        .expect(200);

    // A reader lists nothing and stores nothing (Barbican's new defaults).
    barbican_error(
        get(&h, AUDREY, &format!("{KM}/secrets"), "application/json").await,
        403,
        "attempt not allowed",
    );
    barbican_error(
        json_req(
            &h,
            AUDREY,
            "POST",
            &format!("{KM}/secrets"),
            json!({"name": "x"}),
        )
        .await,
        403,
        "Secret creation attempt not allowed",
    );
    // Bad ACL bodies.
    barbican_error(
        json_req(
            &h,
            ALICE,
            "PUT",
            &format!("{path}/acl"),
            json!({"write": {}}),
        )
        .await,
        400,
        "schema 'ACL'",
    );
    barbican_error(
        json_req(
            &h,
            ALICE,
            "PUT",
            &format!("{path}/acl"),
            json!({"read": {"project-access": "no"}}),
        )
        .await,
        400,
        "schema 'ACL'",
    );
}

#[tokio::test]
async fn containers_and_consumers() {
    let h = Harness::new().await;
    let cert = store_text(&h, ALICE, "cert", "-----BEGIN CERTIFICATE-----").await;
    let key = store_text(&h, ALICE, "key", "-----BEGIN PRIVATE KEY-----").await;
    let r = |id: &str| format!("http://statera.test:9876{KM}/secrets/{id}");
    let containers = format!("{KM}/containers");
    let post = |body: Value| json_req(&h, ALICE, "POST", &containers, body);
    barbican_error(
        post(json!({"type": "certificate", "secret_refs": [{"name": "private_key", "secret_ref": r(&key)}]}))
            .await,
        400,
        "The minimum required reference name is 'certificate'",
    );
    barbican_error(
        post(json!({"type": "certificate", "secret_refs": [{"name": "cert", "secret_ref": r(&cert)}]}))
            .await,
        400,
        "reference names are allowed for Certificate type",
    );
    barbican_error(
        post(json!({"secret_refs": []})).await,
        400,
        "'type' is a required property",
    );
    barbican_error(
        post(json!({"type": "generic", "secret_refs": [{"name": "a", "secret_ref": "http://x/v1/other/1"}]}))
            .await,
        400,
        "Provided field value is not supported",
    );
    let c = post(
        json!({"name": "tls", "type": "certificate", "secret_refs": [
        {"name": "certificate", "secret_ref": r(&cert)},
        {"name": "private_key", "secret_ref": r(&key)}]}),
    )
    .await
    .expect(201);
    let cid = id_of(&c.body["container_ref"]);
    let path = format!("{KM}/containers/{cid}");
    let g = get(&h, ALICE, &path, "application/json").await.expect(200);
    assert_eq!(g.body["type"], "certificate");
    assert_eq!(g.body["secret_refs"][0]["name"], "certificate");
    assert_eq!(g.body["secret_refs"][0]["secret_ref"], r(&cert));
    barbican_error(
        get(&h, BOB, &path, "application/json").await,
        404,
        "Secrets container not found.",
    );

    // Consumers: registered once however often, listed, removed.
    let consumer = json!({"name": "lbaas", "URL": "http://octavia/listeners/1"});
    for _ in 0..2 {
        let c = json_req(
            &h,
            ALICE,
            "POST",
            &format!("{path}/consumers"),
            consumer.clone(),
        )
        .await
        .expect(200);
        assert_eq!(c.body["consumers"], json!([consumer.clone()]));
    }
    let l = get(&h, ALICE, &format!("{path}/consumers"), "application/json")
        .await
        .expect(200);
    assert_eq!(l.body["total"], 1);
    assert_eq!(l.body["consumers"][0]["URL"], "http://octavia/listeners/1");
    json_req(
        &h,
        ALICE,
        "DELETE",
        &format!("{path}/consumers"),
        consumer.clone(),
    )
    .await
    .expect(200);
    barbican_error(
        json_req(
            &h,
            ALICE,
            "DELETE",
            &format!("{path}/consumers"),
            consumer.clone(),
        )
        .await,
        404,
        "Consumer not found.",
    );
    barbican_error(
        json_req(
            &h,
            ALICE,
            "POST",
            &format!("{path}/consumers"),
            json!({"name": "x"}),
        )
        .await,
        400,
        "'URL' is a required property",
    );

    // Deleting a secret takes it out of its containers.
    send(
        &h,
        ALICE,
        "DELETE",
        &format!("{KM}/secrets/{key}"),
        &[],
        None,
    )
    .await
    .expect(204);
    let g = get(&h, ALICE, &path, "application/json").await.expect(200);
    assert_eq!(g.body["secret_refs"].as_array().unwrap().len(), 1);

    // A secret with consumers is deleted at 1.2 only with force.
    let v12 = [("openstack-api-version", "key-manager 1.2")];
    let sc = json!({"service": "octavia", "resource_type": "listener", "resource_id": "l1"});
    let s = send(
        &h,
        ALICE,
        "POST",
        &format!("{KM}/secrets/{cert}/consumers"),
        &v12,
        Some(sc.to_string()),
    )
    .await
    .expect(200);
    assert_eq!(s.body["consumers"][0]["service"], "octavia");
    barbican_error(
        send(
            &h,
            ALICE,
            "DELETE",
            &format!("{KM}/secrets/{cert}"),
            &v12,
            None,
        )
        .await,
        400,
        "Secret cannot be deleted as it has consumers.",
    );
    send(
        &h,
        ALICE,
        "DELETE",
        &format!("{KM}/secrets/{cert}?force=true"),
        &v12,
        None,
    )
    .await
    .expect(204);
    send(&h, ALICE, "DELETE", &path, &[], None)
        .await
        .expect(204);
    barbican_error(
        get(&h, ALICE, &path, "application/json").await,
        404,
        "Secrets container not found.",
    );
}

#[tokio::test]
async fn lists_page_and_filter() {
    let h = Harness::new().await;
    for i in 0..5 {
        store_text(&h, ALICE, &format!("s{i}"), "x").await;
    }
    let l = get(
        &h,
        ALICE,
        &format!("{KM}/secrets?limit=2&offset=2"),
        "application/json",
    )
    .await
    .expect(200);
    assert_eq!(l.body["total"], 5);
    assert_eq!(l.body["secrets"].as_array().unwrap().len(), 2);
    assert!(
        l.body["next"]
            .as_str()
            .unwrap()
            .ends_with("limit=2&offset=4")
    );
    assert!(
        l.body["previous"]
            .as_str()
            .unwrap()
            .ends_with("limit=2&offset=0")
    );
    let l = get(
        &h,
        ALICE,
        &format!("{KM}/secrets?name=s3"),
        "application/json",
    )
    .await
    .expect(200);
    assert_eq!(l.body["total"], 1);
    let l = get(
        &h,
        ALICE,
        &format!("{KM}/secrets?sort=name:desc&limit=1"),
        "application/json",
    )
    .await
    .expect(200);
    assert_eq!(l.body["secrets"][0]["name"], "s4");
    barbican_error(
        get(
            &h,
            ALICE,
            &format!("{KM}/secrets?sort=colour"),
            "application/json",
        )
        .await,
        400,
        "invalid query string",
    );
    let l = get(
        &h,
        ALICE,
        &format!("{KM}/secrets?created=gt:2000-01-01T00:00:00"),
        "application/json",
    )
    .await
    .expect(200);
    assert_eq!(l.body["total"], 5);
}

#[tokio::test]
async fn a_project_holds_a_bounded_number_of_secrets() {
    let h = Harness::with_state(
        |_| {},
        |s| {
            let mut km = statera_api::lab_key_manager();
            km.max_secrets = 2;
            s.key_manager = std::sync::Arc::new(km);
        },
    )
    .await;
    store_text(&h, ALICE, "1", "x").await;
    store_text(&h, ALICE, "2", "x").await;
    barbican_error(
        json_req(
            &h,
            ALICE,
            "POST",
            &format!("{KM}/secrets"),
            json!({"name": "3"}),
        )
        .await,
        403,
        "quota has been reached",
    );
    // Another project has its own share.
    store_text(&h, BOB, "1", "x").await;
}

#[tokio::test]
async fn version_discovery() {
    let h = Harness::new().await;
    // No token needed for the root document.
    let r = h.raw("GET", "/key-manager", &[], None).await.expect(300);
    assert_eq!(r.body["versions"]["values"][0]["id"], "v1");
    let r = h
        .raw(
            "GET",
            "/key-manager/",
            &[("openstack-api-version", "key-manager 1.1")],
            None,
        )
        .await
        .expect(300);
    assert_eq!(r.body["versions"][0]["max_version"], "1.2");
    assert_eq!(
        r.body["versions"][0]["links"][0]["href"],
        "http://statera.test:9876/key-manager/v1/"
    );
    assert_eq!(r.headers["openstack-api-version"], "key-manager 1.1");
    let r = get(&h, ALICE, "/key-manager/v1", "application/json")
        .await
        .expect(200);
    assert_eq!(r.body["version"]["id"], "v1");
    barbican_error(
        send(
            &h,
            ALICE,
            "GET",
            &format!("{KM}/secrets"),
            &[("openstack-api-version", "key-manager 2.0")],
            None,
        )
        .await,
        406,
        "Invalid microversion",
    );
}

#[tokio::test]
async fn consumers_belong_to_the_project_that_registered_them() {
    let h = Harness::new().await;
    let id = store_text(&h, ALICE, "shared", "x").await;
    let path = format!("{KM}/secrets/{id}");
    json_req(
        &h,
        ALICE,
        "PUT",
        &format!("{path}/acl"),
        json!({"read": {"users": ["bob"]}}),
    )
    .await
    .expect(200);
    let mine = json!({"service": "octavia", "resource_type": "listener", "resource_id": "a"});
    json_req(
        &h,
        ALICE,
        "POST",
        &format!("{path}/consumers"),
        mine.clone(),
    )
    .await
    .expect(200);
    // Bob (on the ACL) registers his own, but cannot remove Alice's.
    barbican_error(
        json_req(
            &h,
            BOB,
            "DELETE",
            &format!("{path}/consumers"),
            mine.clone(),
        )
        .await,
        403,
        "only the creator of a consumer can delete it",
    );
    // Nor take the owner's share: at most ten of his.
    for i in 0..10 {
        json_req(
            &h,
            BOB,
            "POST",
            &format!("{path}/consumers"),
            json!({"service": "x", "resource_type": "y", "resource_id": i.to_string()}),
        )
        .await
        .expect(200);
    }
    barbican_error(
        json_req(
            &h,
            BOB,
            "POST",
            &format!("{path}/consumers"),
            json!({"service": "x", "resource_type": "y", "resource_id": "11"}),
        )
        .await,
        403,
        "quota has been reached",
    );
    // The owner's project may remove any consumer of its secret.
    json_req(
        &h,
        ALICE,
        "DELETE",
        &format!("{path}/consumers"),
        json!({"service": "x", "resource_type": "y", "resource_id": "0"}),
    )
    .await
    .expect(200);
}

#[tokio::test]
async fn expired_secrets_leave_the_quota() {
    let h = Harness::with_state(
        |_| {},
        |s| {
            let mut km = statera_api::lab_key_manager();
            km.max_secrets = 2;
            s.key_manager = std::sync::Arc::new(km);
        },
    )
    .await;
    let a = store_text(&h, ALICE, "1", "x").await;
    let b = store_text(&h, ALICE, "2", "x").await;
    h.store
        .write(|txn| {
            for id in [&a, &b] {
                let uuid = Uuid::parse_str(id).unwrap();
                let mut s = (**txn.state().get::<Secret>(&uuid).unwrap()).clone();
                s.expiration = Some(statera_model::now() - chrono::TimeDelta::seconds(1));
                txn.put(s)?;
            }
            Ok::<_, statera_store::StoreError>(())
        })
        .await
        .unwrap();
    store_text(&h, ALICE, "3", "x").await;
    // The expired ones are gone from the store, not only hidden.
    assert_eq!(h.store.snapshot().secrets.len(), 1);
}

// ---------------------------------------------------------------- certificate references

/// A member of the harness's project (its load balancers are that project's).
const TINA: Who = Who(PROJECT, "tina", "member,reader");

struct Issued {
    cert_pem: String,
    key: rcgen::KeyPair,
}

fn issue(names: &[&str]) -> Issued {
    use rcgen::{CertificateParams, DnType, KeyPair};
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = names.first() {
        p.distinguished_name.push(DnType::CommonName, *cn);
    }
    let cert = p.self_signed(&key).unwrap();
    Issued {
        cert_pem: cert.pem(),
        key,
    }
}

fn pkcs12(i: &Issued, password: &str) -> Vec<u8> {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    let der = rustls_pem_der(&i.cert_pem);
    let chain = PrivateKeyChain::new(
        vec![7u8; 20],
        PrivateKey::from_der(&i.key.serialize_der()).unwrap(),
        [Certificate::from_der(&der).unwrap()],
    );
    let mut ks = KeyStore::new();
    ks.add_entry("tls", KeyStoreEntry::PrivateKeyChain(chain));
    ks.writer(password).write().unwrap()
}

fn rustls_pem_der(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

async fn store_binary(h: &Harness, who: Who, bytes: &[u8]) -> String {
    let r = json_req(
        h,
        who,
        "POST",
        &format!("{KM}/secrets"),
        json!({"payload": base64_encode(bytes), "payload_content_type": "application/octet-stream",
               "payload_content_encoding": "base64"}),
    )
    .await
    .expect(201);
    r.body["secret_ref"].as_str().unwrap().to_string()
}

async fn https_listener(h: &Harness, lb: &str, port: u16, extra: Value) -> Resp {
    let mut body = json!({"loadbalancer_id": lb, "protocol": "TERMINATED_HTTPS",
                          "protocol_port": port});
    merge(&mut body, extra);
    json_req(
        h,
        TINA,
        "POST",
        "/v2/lbaas/listeners",
        json!({ "listener": body }),
    )
    .await
}

#[tokio::test]
async fn certificate_references_are_read_with_the_callers_rights() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let good = issue(&["www.example.com"]);
    let mine = store_binary(&h, TINA, &pkcs12(&good, "")).await;
    let theirs = store_binary(&h, BOB, &pkcs12(&good, "")).await;

    // Another project's bundle reads as nothing, in Octavia's words.
    let r = https_listener(&h, &lb, 443, json!({"default_tls_container_ref": theirs})).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.fault(),
        format!("Could not retrieve certificate: ['{theirs}']")
    );
    // Even when its read ACL names the caller: a load balancer reads its certificates as
    // its own project, which could never read this one.
    let path = theirs.split(KM).nth(1).unwrap().to_string();
    json_req(
        &h,
        BOB,
        "PUT",
        &format!("{KM}{path}/acl"),
        json!({"read": {"users": ["tina"]}}),
    )
    .await
    .expect(200);
    let id = path.rsplit('/').next().unwrap().to_string();
    get(
        &h,
        TINA,
        &format!("{KM}/secrets/{id}/payload"),
        "application/octet-stream",
    )
    .await
    .expect(200);
    let r = https_listener(&h, &lb, 443, json!({"default_tls_container_ref": theirs})).await;
    assert_eq!(
        r.fault(),
        format!("Could not retrieve certificate: ['{theirs}']")
    );
    // So does a bare made-up reference, listed with it.
    let made_up = format!("http://statera.test:9876{KM}/secrets/{}", Uuid::new_v4());
    let r = https_listener(
        &h,
        &lb,
        443,
        json!({"default_tls_container_ref": mine, "sni_container_refs": [theirs, made_up]}),
    )
    .await;
    assert_eq!(
        r.fault(),
        format!("Could not retrieve certificate: ['{theirs}', '{made_up}']")
    );

    // A bundle with a password: Octavia's PKCS#12 message.
    let locked = store_binary(&h, TINA, &pkcs12(&good, "pw")).await;
    let r = https_listener(&h, &lb, 443, json!({"default_tls_container_ref": locked})).await;
    assert_eq!(r.status, 400);
    assert!(
        r.fault().starts_with("The PKCS12 bundle is unreadable."),
        "{}",
        r.fault()
    );
    // A certificate naming no host.
    let nameless = store_binary(&h, TINA, &pkcs12(&issue(&[]), "")).await;
    let r = https_listener(&h, &lb, 443, json!({"default_tls_container_ref": nameless})).await;
    assert_eq!(
        r.fault(),
        "No CN or DNSName(s) found in certificate. The certificate is invalid."
    );
    // A client CA that is not PEM.
    let r = https_listener(
        &h,
        &lb,
        443,
        json!({"default_tls_container_ref": mine, "client_ca_tls_container_ref": mine}),
    )
    .await;
    assert!(
        r.fault().starts_with(
            "Validation failure: The client authentication CA certificate is invalid."
        ),
        "{}",
        r.fault()
    );

    // A container whose key is not the certificate's.
    let cert = store_text(&h, TINA, "crt", &good.cert_pem).await;
    let wrong = store_text(
        &h,
        TINA,
        "key",
        &rcgen::KeyPair::generate().unwrap().serialize_pem(),
    )
    .await;
    let c = json_req(
        &h,
        TINA,
        "POST",
        &format!("{KM}/containers"),
        json!({"type": "certificate", "secret_refs": [
            {"name": "certificate", "secret_ref": format!("http://statera.test:9876{KM}/secrets/{cert}")},
            {"name": "private_key", "secret_ref": format!("http://statera.test:9876{KM}/secrets/{wrong}")}]}),
    )
    .await
    .expect(201);
    let container = c.body["container_ref"].as_str().unwrap().to_string();
    let r = https_listener(
        &h,
        &lb,
        443,
        json!({"default_tls_container_ref": container}),
    )
    .await;
    assert_eq!(
        r.fault(),
        format!("Could not retrieve certificate: ['{container}']")
    );

    // The caller's own, readable bundle passes.
    let r = https_listener(&h, &lb, 443, json!({"default_tls_container_ref": mine})).await;
    assert_eq!(r.status, 201, "{}", r.text);

    // A pool's client certificate, and a fully populated create: the same.
    let r = json_req(
        &h,
        TINA,
        "POST",
        "/v2/lbaas/pools",
        json!({"pool": {"loadbalancer_id": lb, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                        "tls_enabled": true, "tls_container_ref": theirs}}),
    )
    .await;
    assert_eq!(
        r.fault(),
        format!("Could not retrieve certificate: ['{theirs}']")
    );
    let r = json_req(
        &h,
        TINA,
        "POST",
        "/v2/lbaas/loadbalancers",
        json!({"loadbalancer": {"vip_subnet_id": h.subnet_id, "listeners": [
            {"protocol": "TERMINATED_HTTPS", "protocol_port": 8443,
             "default_tls_container_ref": theirs}]}}),
    )
    .await;
    assert_eq!(
        r.fault(),
        format!("Could not retrieve certificate: ['{theirs}']")
    );

    // References on an HTTP listener: Octavia's own refusal, not a lookup.
    let r = json_req(
        &h,
        TINA,
        "POST",
        "/v2/lbaas/listeners",
        json!({"listener": {"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": 80,
                            "default_tls_container_ref": theirs}}),
    )
    .await;
    assert!(
        r.fault().contains(
            "Certificate container references are not allowed on HTTP protocol listeners."
        ),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn a_client_crl_must_be_the_client_cas() {
    use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let ca = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let pem = p.self_signed(&key).unwrap().pem();
        (pem, Issuer::new(p, key))
    };
    let (ca1, issuer1) = ca("CA one");
    let (ca2, _) = ca("CA two");
    let crl = rcgen::CertificateRevocationListParams {
        this_update: rcgen::date_time_ymd(2026, 1, 1),
        next_update: rcgen::date_time_ymd(2036, 1, 1),
        crl_number: rcgen::SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: Vec::new(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&issuer1)
    .unwrap()
    .pem()
    .unwrap();

    let h = Harness::new().await;
    let lb = h.lb().await;
    let href = |id: String| format!("http://statera.test:9876{KM}/secrets/{id}");
    let bundle = store_binary(&h, TINA, &pkcs12(&issue(&["www.example.com"]), "")).await;
    let ca1 = href(store_text(&h, TINA, "ca1", &ca1).await);
    let ca2 = href(store_text(&h, TINA, "ca2", &ca2).await);
    let crl = href(store_text(&h, TINA, "crl", &crl).await);
    let with = |ca: &str| {
        json!({"default_tls_container_ref": bundle, "client_authentication": "MANDATORY",
               "client_ca_tls_container_ref": ca, "client_crl_container_ref": crl})
    };
    let r = https_listener(&h, &lb, 443, with(&ca2)).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.fault(),
        "Validation failure: The CRL specified is not valid for client certificate authority reference supplied."
    );
    // The CA that signed it: the references pass.
    let r = https_listener(&h, &lb, 443, with(&ca1)).await;
    assert_eq!(r.status, 201, "{}", r.text);
}
