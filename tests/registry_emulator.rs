//! The registry emulator through HTTP, as a registry client sees it: tokens, the
//! write rules and their exact error bodies, the two change feeds and their
//! cursors, bulk requests, status queries, the rate limit and malformed input.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use iys_gate::consent::{Brand, ConsentTime};
use iys_gate::registry::api::ConsentBody;
use iys_gate::registry::emulator::{self, Emulator, EmulatorConfig, EmulatorServer, FeedSource};
use serde_json::{json, Value};
use tokio::net::TcpListener;

const BRAND: &str = "/sps/700001/brands/1/consents";

struct Harness {
    emulator: Arc<Emulator>,
    server: EmulatorServer,
    http: reqwest::Client,
}

impl Harness {
    async fn start(config: EmulatorConfig) -> Harness {
        let emulator = Arc::new(Emulator::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = emulator::spawn(emulator.clone(), listener).unwrap();
        Harness {
            emulator,
            server,
            http: reqwest::Client::new(),
        }
    }

    async fn default() -> Harness {
        Harness::start(EmulatorConfig::default()).await
    }

    async fn send(&self, req: reqwest::RequestBuilder, token: Option<&str>) -> (u16, Value) {
        let req = match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {text}"));
        (status, body)
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let req = self
            .http
            .post(format!("{}{path}", self.server.url()))
            .json(body);
        self.send(req, token).await
    }

    async fn get(&self, path_and_query: &str, token: Option<&str>) -> (u16, Value) {
        let req = self
            .http
            .get(format!("{}{path_and_query}", self.server.url()));
        self.send(req, token).await
    }

    async fn password_grant(&self) -> Value {
        let (status, body) = self
            .post(
                "/oauth2/token",
                None,
                &json!({"username":"demo","password":"demo","grant_type":"password"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn token(&self) -> String {
        self.password_grant().await["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// All of a feed from the start, `limit` per page; returns the changes and
    /// the final cursor.
    async fn drain(
        &self,
        token: &str,
        source: &str,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<Value>, String) {
        let mut after = after.map(str::to_string);
        let mut all = Vec::new();
        loop {
            let mut q = format!("{BRAND}/changes?source={source}&limit={limit}");
            if let Some(a) = &after {
                q.push_str(&format!("&after={a}"));
            }
            let (status, page) = self.get(&q, Some(token)).await;
            assert_eq!(status, 200, "{page}");
            let list = page["list"].as_array().unwrap().clone();
            assert!(list.len() <= limit);
            after = Some(page["after"].as_str().unwrap().to_string());
            if list.is_empty() {
                return (all, after.unwrap_or_default());
            }
            all.extend(list);
        }
    }
}

fn consent(recipient: &str, status: &str, date: &str, source: &str) -> Value {
    json!({
        "consentDate": date,
        "source": source,
        "recipient": recipient,
        "recipientType": "BIREYSEL",
        "status": status,
        "type": "MESAJ",
    })
}

/// The registry's error shape with exactly one error: returns (location or "", code).
fn one_error(body: &Value) -> (String, String) {
    let obj = body
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {body}"));
    assert_eq!(obj.len(), 1, "only `errors`: {body}");
    let errors = obj["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{body}");
    let e = errors[0].as_object().unwrap();
    let keys: HashSet<&str> = e.keys().map(String::as_str).collect();
    assert!(
        keys.is_subset(&HashSet::from(["location", "code", "message"])),
        "{body}"
    );
    assert!(!e["message"].as_str().unwrap().is_empty());
    (
        e.get("location")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        e["code"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn password_and_refresh_grants() {
    let h = Harness::default().await;
    let first = h.password_grant().await;
    assert_eq!(first["expires_in"], 7200);
    assert_eq!(first["refresh_expires_in"], 14400);
    assert_eq!(first["token_type"], "bearer");
    let refresh = first["refresh_token"].as_str().unwrap();

    let (status, second) = h
        .post(
            "/oauth2/token",
            None,
            &json!({"grant_type":"refresh_token","refresh_token":refresh}),
        )
        .await;
    assert_eq!(status, 200, "{second}");
    assert_ne!(second["access_token"], first["access_token"]);
    let access = second["access_token"].as_str().unwrap();
    let (status, _) = h
        .get(&format!("{BRAND}/changes?source=HS"), Some(access))
        .await;
    assert_eq!(status, 200);

    // A refresh token works once.
    let (status, body) = h
        .post(
            "/oauth2/token",
            None,
            &json!({"grant_type":"refresh_token","refresh_token":refresh}),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(one_error(&body), ("refresh_token".into(), "H351".into()));

    let (status, body) = h
        .post(
            "/oauth2/token",
            None,
            &json!({"username":"demo","password":"wrong","grant_type":"password"}),
        )
        .await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = h
        .post(
            "/oauth2/token",
            None,
            &json!({"grant_type":"client_credentials"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(one_error(&body).0, "grant_type");
}

#[tokio::test]
async fn missing_invalid_or_expired_token_is_401_h351() {
    let h = Harness::start(EmulatorConfig {
        access_ttl: Duration::from_secs(1),
        ..EmulatorConfig::default()
    })
    .await;
    let body = consent("05321234567", "ONAY", "2024-01-02 10:00:00", "HS_WEB");
    for token in [None, Some("not-a-token")] {
        let (status, err) = h.post(BRAND, token, &body).await;
        assert_eq!(status, 401, "{err}");
        assert_eq!(one_error(&err).1, "H351");
    }
    let resp = h
        .http
        .get(format!("{}{BRAND}/changes?source=HS", h.server.url()))
        .header("Authorization", "Basic ZGVtbzpkZW1v")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");

    let token = h.token().await;
    let (status, _) = h.post(BRAND, Some(&token), &body).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, err) = h
        .get(&format!("{BRAND}/changes?source=HS"), Some(&token))
        .await;
    assert_eq!(status, 401);
    assert_eq!(one_error(&err).1, "H351");
    assert!(err.to_string().contains("expired"), "{err}");
}

#[tokio::test]
async fn write_rules_answer_with_the_registry_codes() {
    let h = Harness::default().await;
    let t = h.token().await;
    let t = Some(t.as_str());

    // H155: before 2015-05-01.
    let (status, err) = h
        .post(
            BRAND,
            t,
            &consent("05321234567", "ONAY", "2015-04-30 23:59:59", "HS_WEB"),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(one_error(&err), ("consentDate".into(), "H155".into()));

    // H175: the first record cannot be RET.
    let (status, err) = h
        .post(
            BRAND,
            t,
            &consent("05321234567", "RET", "2024-01-02 10:00:00", "HS_WEB"),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(one_error(&err), ("status".into(), "H175".into()));

    let (status, ok) = h
        .post(
            BRAND,
            t,
            &consent("05321234567", "ONAY", "2024-01-02 10:00:00", "HS_WEB"),
        )
        .await;
    assert_eq!(status, 200, "{ok}");
    let keys: HashSet<&str> = ok.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, HashSet::from(["transactionId", "creationDate"]));
    assert!(ConsentTime::parse(ok["creationDate"].as_str().unwrap()).is_ok());

    // H174: same status again (another spelling of the same number).
    let (status, err) = h
        .post(
            BRAND,
            t,
            &consent("+90 532 123 45 67", "ONAY", "2024-02-02 10:00:00", "HS_WEB"),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(one_error(&err), ("status".into(), "H174".into()));

    // H178: older than the stored record.
    let (status, err) = h
        .post(
            BRAND,
            t,
            &consent("5321234567", "RET", "2023-12-31 10:00:00", "HS_WEB"),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(one_error(&err), ("consentDate".into(), "H178".into()));

    // A newer RET is accepted; a field error names the field.
    let (status, _) = h
        .post(
            BRAND,
            t,
            &consent("5321234567", "RET", "2024-03-01 10:00:00", "HS_WEB"),
        )
        .await;
    assert_eq!(status, 200);
    let mut bad = consent("5321234567", "ONAY", "2024-04-01 10:00:00", "HS_WEB");
    bad["type"] = json!("SMS");
    let (status, err) = h.post(BRAND, t, &bad).await;
    assert_eq!(status, 400);
    assert_eq!(one_error(&err), ("type".into(), "H000".into()));
    assert!(
        err.to_string().contains("MESAJ"),
        "names the accepted values: {err}"
    );
}

#[tokio::test]
async fn citizen_changes_appear_in_the_iys_feed_only() {
    let h = Harness::default().await;
    let token = h.token().await;
    let t = Some(token.as_str());
    let (status, hs) = h
        .post(
            BRAND,
            t,
            &consent("05321234567", "ONAY", "2024-01-02 10:00:00", "HS_WEB"),
        )
        .await;
    assert_eq!(status, 200);
    let (status, iys) = h
        .post(
            BRAND,
            t,
            &consent("05321234567", "RET", "2024-05-02 10:00:00", "IYS_KISA_LINK"),
        )
        .await;
    assert_eq!(status, 200);
    // A citizen played in process lands in the same feed.
    let brand = Brand::new(700001, 1);
    let body: ConsentBody = serde_json::from_value(consent(
        "05329998877",
        "ONAY",
        "2024-05-03 10:00:00",
        "IYS_WEB",
    ))
    .unwrap();
    let in_process = h
        .emulator
        .add_consent(brand, &body, ConsentTime::now())
        .unwrap();

    let (hs_feed, _) = h.drain(&token, "HS", None, 999).await;
    let (iys_feed, _) = h.drain(&token, "IYS", None, 999).await;
    let ids = |feed: &[Value]| -> Vec<String> {
        feed.iter()
            .map(|c| c["transactionId"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(&hs_feed),
        vec![hs["transactionId"].as_str().unwrap().to_string()]
    );
    assert_eq!(
        ids(&iys_feed),
        vec![
            iys["transactionId"].as_str().unwrap().to_string(),
            in_process.transaction_id
        ]
    );
    let change = &iys_feed[0];
    assert_eq!(change["recipient"], "+905321234567");
    assert_eq!(change["status"], "RET");
    assert_eq!(change["source"], "IYS_KISA_LINK");
    assert_eq!(change["type"], "MESAJ");
    assert_eq!(change["recipientType"], "BIREYSEL");
    assert_eq!(change["consentDate"], "2024-05-02 10:00:00");
    assert_eq!(change["creationDate"], iys["creationDate"]);
}

#[tokio::test]
async fn paging_returns_every_change_exactly_once() {
    let h = Harness::default().await;
    let t = h.token().await;
    let mut posted = Vec::new();
    for i in 0..23 {
        let (status, ok) = h
            .post(
                BRAND,
                Some(&t),
                &consent(
                    &format!("0532100{i:04}"),
                    "ONAY",
                    "2024-01-02 10:00:00",
                    "HS_WEB",
                ),
            )
            .await;
        assert_eq!(status, 200, "{ok}");
        posted.push(ok["transactionId"].as_str().unwrap().to_string());
    }
    let (first, cursor) = h.drain(&t, "HS", None, 5).await;
    let got: Vec<&str> = first
        .iter()
        .map(|c| c["transactionId"].as_str().unwrap())
        .collect();
    assert_eq!(got, posted, "all changes, in creation order, once");

    // Resume from the stored cursor: only what came after.
    let mut more = Vec::new();
    for i in 0..4 {
        let (_, ok) = h
            .post(
                BRAND,
                Some(&t),
                &consent(
                    &format!("0533100{i:04}"),
                    "ONAY",
                    "2024-01-02 10:00:00",
                    "HS_WEB",
                ),
            )
            .await;
        more.push(ok["transactionId"].as_str().unwrap().to_string());
    }
    let (second, _) = h.drain(&t, "HS", Some(&cursor), 3).await;
    let got: Vec<&str> = second
        .iter()
        .map(|c| c["transactionId"].as_str().unwrap())
        .collect();
    assert_eq!(got, more);

    // Bad limits and cursors are 400 with the parameter named.
    for (q, location) in [
        ("source=HS&limit=1000", "limit"),
        ("source=HS&limit=0", "limit"),
        ("source=HS&limit=ten", "limit"),
        ("source=HS&after=garbage", "after"),
        ("source=SMS", "source"),
        ("limit=5", "source"),
    ] {
        let (status, err) = h.get(&format!("{BRAND}/changes?{q}"), Some(&t)).await;
        assert_eq!(status, 400, "{q}: {err}");
        assert_eq!(one_error(&err), (location.into(), "H000".into()), "{q}");
    }
    // An HS cursor is not accepted on the IYS feed.
    let (status, err) = h
        .get(
            &format!("{BRAND}/changes?source=IYS&after={cursor}"),
            Some(&t),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(one_error(&err).0, "after");
}

#[tokio::test]
async fn bulk_request_and_its_result() {
    let h = Harness::default().await;
    let t = h.token().await;
    let items = json!([
        consent("05321234567", "ONAY", "2024-01-02 10:00:00", "HS_WEB"),
        consent("05321234568", "RET", "2024-01-02 10:00:00", "HS_WEB"),
        {"recipient": "05321234569", "type": "MESAJ"},
        consent("05321234567", "RET", "2024-02-02 10:00:00", "HS_WEB"),
    ]);
    let (status, accepted) = h.post(&format!("{BRAND}/request"), Some(&t), &items).await;
    assert_eq!(status, 200, "{accepted}");
    let request_id = accepted["requestId"].as_str().unwrap();
    let subs = accepted["subRequests"].as_array().unwrap();
    assert_eq!(subs.len(), 4);

    let (status, result) = h
        .get(&format!("{BRAND}/request/{request_id}"), Some(&t))
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["requestId"], request_id);
    let list = result["list"].as_array().unwrap();
    let states: Vec<&str> = list.iter().map(|i| i["status"].as_str().unwrap()).collect();
    assert_eq!(states, ["success", "failure", "failure", "success"]);
    for (item, sub) in list.iter().zip(subs) {
        assert_eq!(&item["subRequestId"], sub);
    }
    assert!(list[0]["transactionId"].is_string());
    assert_eq!(list[1]["error"]["code"], "H175");
    assert_eq!(list[1]["recipient"], "05321234568");
    assert_eq!(list[2]["error"]["code"], "H000");
    assert!(
        list[2]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing field"),
        "{}",
        list[2]
    );

    // Items applied in order: the number ends RET, and both changes are in the feed.
    let (_, feed) = h.get(&format!("{BRAND}/changes?source=HS"), Some(&t)).await;
    assert_eq!(feed["list"].as_array().unwrap().len(), 2);

    let (status, err) = h
        .get(&format!("{BRAND}/request/no-such-id"), Some(&t))
        .await;
    assert_eq!(status, 404);
    one_error(&err);
    let (status, err) = h
        .post(&format!("{BRAND}/request"), Some(&t), &json!([]))
        .await;
    assert_eq!(status, 400);
    one_error(&err);
}

#[test]
fn bulk_items_wait_in_enqueue_for_the_bulk_delay() {
    let emu = Emulator::new(EmulatorConfig {
        bulk_delay: Duration::from_secs(30),
        ..EmulatorConfig::default()
    });
    let brand = Brand::new(700001, 1);
    let t0 = ConsentTime::parse("2026-01-01 12:00:00").unwrap();
    let accepted = emu
        .submit_bulk(
            brand,
            &[consent(
                "05321234567",
                "ONAY",
                "2024-01-02 10:00:00",
                "HS_WEB",
            )],
            t0,
        )
        .unwrap();
    let r = emu
        .bulk_result(brand, &accepted.request_id, ConsentTime(t0.unix() + 29))
        .unwrap();
    assert_eq!(r.list[0].status, "enqueue");
    assert_eq!(emu.consent_count(), 0);
    let r = emu
        .bulk_result(brand, &accepted.request_id, ConsentTime(t0.unix() + 30))
        .unwrap();
    assert_eq!(r.list[0].status, "success");
    assert_eq!(emu.consent_count(), 1);
}

#[tokio::test]
async fn status_query_returns_the_stored_record() {
    let h = Harness::default().await;
    let t = h.token().await;
    let mut body = consent(
        "ali.veli@example.com",
        "ONAY",
        "2024-01-02 10:00:00",
        "HS_WEB",
    );
    body["type"] = json!("EPOSTA");
    body["retailerCode"] = json!(12);
    body["retailerAccess"] = json!([5, 3]);
    let (status, ok) = h.post(BRAND, Some(&t), &body).await;
    assert_eq!(status, 200, "{ok}");

    let query =
        json!({"recipient":" Ali.Veli@EXAMPLE.com","recipientType":"BIREYSEL","type":"EPOSTA"});
    let (status, got) = h.post(&format!("{BRAND}/status"), Some(&t), &query).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(
        got,
        json!({
            "recipient": "ali.veli@example.com",
            "recipientType": "BIREYSEL",
            "type": "EPOSTA",
            "source": "HS_WEB",
            "status": "ONAY",
            "consentDate": "2024-01-02 10:00:00",
            "creationDate": ok["creationDate"],
            "retailerCode": 12,
            "retailerAccess": [3, 5],
        })
    );

    // Other recipient type, other brand: no record.
    let tacir = json!({"recipient":"ali.veli@example.com","recipientType":"TACIR","type":"EPOSTA"});
    let (status, err) = h.post(&format!("{BRAND}/status"), Some(&t), &tacir).await;
    assert_eq!(status, 404);
    assert_eq!(err["errors"][0]["code"], "H000");
    let (status, _) = h
        .post("/sps/700001/brands/2/consents/status", Some(&t), &query)
        .await;
    assert_eq!(status, 404);
    let bad = json!({"recipient":"not-an-email","recipientType":"BIREYSEL","type":"EPOSTA"});
    let (status, err) = h.post(&format!("{BRAND}/status"), Some(&t), &bad).await;
    assert_eq!(status, 400);
    assert_eq!(one_error(&err), ("recipient".into(), "H000".into()));
}

#[tokio::test]
async fn rate_limit_answers_429_h124() {
    let h = Harness::start(EmulatorConfig {
        rate_limit: Some(3),
        ..EmulatorConfig::default()
    })
    .await;
    let mut limited = 0;
    for _ in 0..8 {
        let resp = h
            .http
            .get(format!("{}{BRAND}/changes?source=HS", h.server.url()))
            .send()
            .await
            .unwrap();
        match resp.status().as_u16() {
            429 => {
                assert_eq!(resp.headers()["retry-after"], "1");
                let body: Value = resp.json().await.unwrap();
                assert_eq!(body["errors"][0]["code"], "H124");
                limited += 1;
            }
            401 => {}
            other => panic!("unexpected {other}"),
        }
    }
    // Within one second at most three get through (two if the window turned).
    assert!(limited >= 2, "{limited} of 8 limited");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _) = h.get(&format!("{BRAND}/changes?source=HS"), None).await;
    assert_eq!(
        status, 401,
        "admitted again after a second (then refused for the token)"
    );
}

#[tokio::test]
async fn malformed_requests_get_the_error_shape() {
    let h = Harness::default().await;
    let t = h.token().await;
    let url = format!("{}{BRAND}", h.server.url());

    let resp = h
        .http
        .post(&url)
        .bearer_auth(&t)
        .header("content-type", "application/json")
        .body(r#"{"recipient":"05321234567","#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(one_error(&err), ("body".into(), "H000".into()));
    assert!(err.to_string().contains("invalid JSON"), "{err}");

    let (status, err) = h
        .post(
            BRAND,
            Some(&t),
            &json!({"recipient":"05321234567","type":"MESAJ"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        err.to_string().contains("missing field `recipientType`"),
        "{err}"
    );

    let (status, err) = h.get("/sps/700001/brands/1/consent", Some(&t)).await;
    assert_eq!(status, 404);
    one_error(&err);
    let (status, err) = h.get("/", None).await;
    assert_eq!(status, 404);
    one_error(&err);
    let (status, err) = h.get(BRAND, Some(&t)).await;
    assert_eq!(status, 405);
    one_error(&err);
    let (status, err) = h
        .get("/sps/70x/brands/1/consents/changes?source=HS", Some(&t))
        .await;
    assert_eq!(status, 400);
    assert_eq!(one_error(&err).0, "iysCode");
}

#[test]
fn csv_load_sets_state_without_feed_and_reports_bad_lines() {
    let csv = "iysCode,brandCode,recipient,recipientType,type,status,consentDate,source,retailerCode,retailerAccess\n\
        700001,1,05321234567,BIREYSEL,MESAJ,ONAY,2024-01-02 10:00:00,HS_WEB,,\n\
        700001,1,05321234567,BIREYSEL,SMS,ONAY,2024-01-02 10:00:00,HS_WEB,,\n\
        700001,1,05321234567,BIREYSEL,MESAJ,RET,2023-01-02 10:00:00,IYS_WEB,,\n\
        700001,1,+905321234568,TACIR,ARAMA,ONAY,,,,\n\
        700001,1,05321234569,BIREYSEL,MESAJ,RET,2014-01-02 10:00:00,IYS_WEB,,\n";
    let emu = Emulator::default();
    let now = ConsentTime::now();
    let summary = emu.load_csv(csv.as_bytes(), now).unwrap();
    assert_eq!(
        (
            summary.rows,
            summary.loaded,
            summary.superseded,
            summary.skipped
        ),
        (5, 2, 1, 2)
    );
    assert!(
        summary.errors[0].starts_with("line 3:"),
        "{:?}",
        summary.errors
    );
    assert!(summary.errors[1].starts_with("line 6:") && summary.errors[1].contains("H155"));

    let brand = Brand::new(700001, 1);
    let q = serde_json::from_value(
        json!({"recipient":"5321234567","recipientType":"BIREYSEL","type":"MESAJ"}),
    )
    .unwrap();
    let s = emu.status(brand, &q, now).unwrap();
    assert_eq!(
        (s.status.as_str(), s.consent_date.as_str()),
        ("ONAY", "2024-01-02 10:00:00")
    );
    for feed in [FeedSource::Hs, FeedSource::Iys] {
        assert!(emu
            .changes(brand, feed, None, None, now)
            .unwrap()
            .list
            .is_empty());
    }
    // Loaded state is what the write rules check against.
    let again: ConsentBody = serde_json::from_value(consent(
        "05321234567",
        "ONAY",
        "2024-06-01 10:00:00",
        "HS_WEB",
    ))
    .unwrap();
    assert_eq!(
        emu.add_consent(brand, &again, now).unwrap_err().errors[0].code,
        "H174"
    );

    let bad_header = emu.load_csv("recipient,status\n1,2\n".as_bytes(), now);
    assert!(bad_header.is_err());
}

#[test]
fn feed_lag_hides_and_retention_prunes() {
    let emu = Emulator::new(EmulatorConfig {
        feed_lag: Duration::from_secs(3600),
        ..EmulatorConfig::default()
    });
    let brand = Brand::new(700001, 1);
    let t0 = ConsentTime::parse("2026-01-01 12:00:00").unwrap();
    let body: ConsentBody = serde_json::from_value(consent(
        "05321234567",
        "ONAY",
        "2024-01-02 10:00:00",
        "HS_WEB",
    ))
    .unwrap();
    emu.add_consent(brand, &body, t0).unwrap();

    let page = emu
        .changes(
            brand,
            FeedSource::Hs,
            None,
            None,
            ConsentTime(t0.unix() + 3599),
        )
        .unwrap();
    assert!(page.list.is_empty(), "younger than the lag");
    let cursor = page.after;
    let page = emu
        .changes(
            brand,
            FeedSource::Hs,
            Some(&cursor),
            None,
            ConsentTime(t0.unix() + 3600),
        )
        .unwrap();
    assert_eq!(
        page.list.len(),
        1,
        "the same cursor sees it once the lag passed"
    );

    let week = 7 * 24 * 3600;
    let page = emu
        .changes(
            brand,
            FeedSource::Hs,
            None,
            None,
            ConsentTime(t0.unix() + week + 1),
        )
        .unwrap();
    assert!(page.list.is_empty(), "older than 7 days: pruned");
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let h = Harness::default().await;
    let url = h.server.url();
    h.token().await;
    h.server.shutdown().await.unwrap();
    assert!(reqwest::get(format!("{url}/oauth2/token")).await.is_err());
}

/// Memory for 20 M consents: generate a CSV export with the project's
/// generator, load it, report resident memory. Run with
/// `cargo test --release --test registry_emulator -- --ignored --nocapture twenty_million`.
#[test]
#[ignore = "generates a ~1.5 GB file and takes a minute; run by hand"]
fn twenty_million_consents_memory() {
    use iys_gate::gen::{GenParams, Generator};
    use std::io::{BufReader, BufWriter};

    let dir = std::env::var_os("IYS_MEM_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let path = dir.join("iys-emulator-20m.csv");
    let tuples = 20_000_000;
    if !path.exists() {
        let params = GenParams::new(tuples, 1000, 1);
        let generator = Generator::new(&params).unwrap();
        let out = BufWriter::new(std::fs::File::create(&path).unwrap());
        generator.write_csv(out).unwrap();
    }
    let rss = |field: &str| -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            / 1024
    };
    let before = rss("VmRSS:");
    let started = std::time::Instant::now();
    let emu = Emulator::default();
    let file = BufReader::new(std::fs::File::open(&path).unwrap());
    let summary = emu.load_csv(file, ConsentTime::now()).unwrap();
    let took = started.elapsed();
    assert_eq!(summary.skipped, 0, "{:?}", summary.errors);
    assert_eq!(emu.consent_count() as u64, tuples);
    let after = rss("VmRSS:");
    println!(
        "loaded {summary} in {took:.1?}: {} consents; RSS {before} MiB before, {after} MiB after (+{} MiB, {:.1} bytes/consent), peak {} MiB",
        emu.consent_count(),
        after - before,
        (after - before) as f64 * 1048576.0 / tuples as f64,
        rss("VmHWM:")
    );
    assert!(after < 3 * 1024, "20 M consents must fit in a few GB");
}
