//! `POST /v1/cross-sell` over real HTTP on loopback: a stand-in serves the trainer's cross-sell
//! routes (or no model yet) and the feature store's purchase history, and the gateway is the real
//! application.
//!
//! - Without a trained model the call is refused with `no_model` (no fallback answer).
//! - With one, each account gets suggestions from its own purchases, each naming the purchase
//!   behind it; an account without purchases gets best sellers and says so.
//! - Bad requests get stable codes; the call needs a JWT like scoring does.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, get, post, web};
use chrono::Utc;
use secrecy::SecretString;
use serde_json::{Value, json};
use sextant_contracts::SalesforceId;
use sextant_contracts::api::PurchaseHistoryRequest;
use sextant_gateway::auth::AuthSettings;
use sextant_gateway::{Application, Settings};
use sextant_models::next_category::{self, Basket, CategoryScheme, NextCategoryConfig};
use sextant_models::recommend::{CrossSellArtifact, CrossSellModel, ItemItem, Weighting};

const SECRET: &str = "a-development-secret-of-at-least-32-bytes!";

fn account(n: u64) -> String {
    SalesforceId::from_parts("001", "5g", n).to_string()
}

fn product(n: u64) -> String {
    SalesforceId::from_parts("01t", "5g", n).to_string()
}

/// Three products: a bag suggests the lunch box, the lunch box suggests the bag; cards sell best.
fn model() -> CrossSellModel {
    let recommend = CrossSellArtifact::new(
        "ease",
        vec![product(1), product(2), product(3)],
        ItemItem {
            n_items: 3,
            weighting: Weighting::Binary,
            self_weight: 0.0,
            neighbours: vec![vec![(1, 0.8)], vec![(0, 0.7)], vec![]],
        },
        vec![2.0, 1.0, 9.0],
    )
    .expect("artefact");
    let mut counts = HashMap::new();
    counts.insert("BAG".to_owned(), 5);
    counts.insert("BOX".to_owned(), 4);
    let scheme = CategoryScheme::from_counts(&counts, 2);
    let (bag, boxes) = (scheme.index_of(Some("BAG")), scheme.index_of(Some("BOX")));
    let histories: Vec<Vec<Basket>> = (0..4)
        .map(|_| {
            vec![
                Basket {
                    day: 0,
                    categories: vec![bag],
                },
                Basket {
                    day: 30,
                    categories: vec![boxes],
                },
            ]
        })
        .collect();
    let nc = next_category::fit(
        &scheme,
        &histories,
        NextCategoryConfig {
            half_life_days: None,
            transition_weight: 4.0,
            popularity_weight: 0.1,
        },
    )
    .expect("fit");
    CrossSellModel {
        format: CrossSellModel::FORMAT,
        version: "cross_sell-v2".into(),
        recommend,
        names: vec![
            "LUNCH BAG".into(),
            "LUNCH BOX".into(),
            "GREETING CARD".into(),
        ],
        item_categories: vec![bag as u32, boxes as u32, scheme.other() as u32],
        next_category: nc,
    }
}

struct Upstream {
    has_model: AtomicBool,
}

#[get("/v1/cross-sell/models/current")]
async fn current(u: web::Data<Upstream>) -> HttpResponse {
    if u.has_model.load(Ordering::SeqCst) {
        HttpResponse::Ok().json(json!({"version": "cross_sell-v2"}))
    } else {
        HttpResponse::NotFound().json(
            json!({"code": "no_model", "message": "no cross-sell model has been trained yet"}),
        )
    }
}

#[get("/v1/cross-sell/models/cross_sell-v2/artifact")]
async fn artifact() -> HttpResponse {
    HttpResponse::Ok().json(model())
}

/// Account 1 bought a bag; every other account bought nothing.
#[post("/v1/purchases/history")]
async fn history(req: web::Json<PurchaseHistoryRequest>) -> HttpResponse {
    let accounts: Vec<Value> = req
        .account_ids
        .iter()
        .map(|id| {
            let orders = if id.to_string() == account(1) {
                json!([{"order_id": "801", "date": "2011-05-01", "product_ids": [product(1)]}])
            } else {
                json!([])
            };
            json!({"account_id": id, "orders": orders})
        })
        .collect();
    HttpResponse::Ok().json(json!({ "accounts": accounts }))
}

fn upstream() -> (String, Arc<Upstream>) {
    let state = Arc::new(Upstream {
        has_model: AtomicBool::new(false),
    });
    let data = web::Data::from(Arc::clone(&state));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .service(current)
            .service(artifact)
            .service(history)
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .expect("bind");
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    (format!("http://127.0.0.1:{port}"), state)
}

fn token() -> String {
    let now = Utc::now().timestamp();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"iss": "sextant-test", "aud": "sextant-gateway", "sub": "apex", "exp": now + 300, "iat": now}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("token")
}

async fn post_cross_sell(gateway: &str, body: &Value, auth: bool) -> (u16, Value) {
    post(gateway, "/v1/cross-sell", body, auth).await
}

async fn post(gateway: &str, route: &str, body: &Value, auth: bool) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{gateway}{route}"))
        .json(body);
    if auth {
        req = req.bearer_auth(token());
    }
    let resp = req.send().await.expect("sent");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A gateway on loopback in front of the stand-ins (the cross-sell model not yet trained).
async fn start_gateway() -> (String, Arc<Upstream>) {
    let (upstream, state) = upstream();
    let mut settings = Settings::with_auth(AuthSettings {
        rs256_public_key_pem: None,
        hs256_secret: Some(SecretString::from(SECRET.to_owned())),
        leeway_secs: 30,
        ..AuthSettings::new("sextant-test", "sextant-gateway")
    });
    settings.port = 0;
    settings.feature_store_url = upstream.clone();
    settings.trainer_url = upstream;
    settings.model_refresh_secs = 1;
    let app = Application::build(&settings).await.expect("gateway starts");
    let gateway = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    (gateway, state)
}

#[tokio::test]
async fn accounts_get_suggestions_from_their_own_purchases_with_reasons() {
    let (gateway, state) = start_gateway().await;

    let ask = json!({"record_ids": [account(1), account(2), account(1)], "limit": 2});
    let (status, body) = post_cross_sell(&gateway, &ask, true).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("no_model")),
        "{body}"
    );
    let (status, body) = post_cross_sell(&gateway, &ask, false).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));

    state.has_model.store(true, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let body = loop {
        let (status, body) = post_cross_sell(&gateway, &ask, true).await;
        if status == 200 {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cross-sell model never loaded: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(body["model_version"], "cross_sell-v2");
    let results = body["results"].as_array().expect("results");
    assert_eq!(
        results.len(),
        2,
        "one entry per account, duplicates once: {body}"
    );
    let bag_buyer = &results[0];
    assert_eq!(bag_buyer["record_id"], account(1));
    assert_eq!(bag_buyer["basis"], "history");
    assert_eq!(bag_buyer["orders_considered"], 1);
    assert_eq!(bag_buyer["items"][0]["name"], "LUNCH BOX", "{bag_buyer}");
    assert_eq!(
        bag_buyer["items"][0]["because"]["name"], "LUNCH BAG",
        "{bag_buyer}"
    );
    assert!(
        bag_buyer["items"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|i| i["item"] != product(1)),
        "what was bought is not suggested again: {bag_buyer}"
    );
    assert_eq!(
        bag_buyer["next_category"][0]["category"], "BOX",
        "{bag_buyer}"
    );
    assert_eq!(
        bag_buyer["next_category"][0]["because"], "follows_last_order",
        "{bag_buyer}"
    );
    let newcomer = &results[1];
    assert_eq!(newcomer["basis"], "popularity", "{newcomer}");
    assert_eq!(newcomer["items"][0]["name"], "GREETING CARD");
    assert!(newcomer["items"][0]["because"].is_null());

    let many: Vec<String> = (1..=201).map(account).collect();
    for (body, code) in [
        (json!({"record_ids": []}), "empty_request"),
        (json!({"record_ids": many}), "too_many_records"),
        (json!({"record_ids": [product(1)]}), "invalid_record_id"),
        (
            json!({"record_ids": [account(1)], "limit": 0}),
            "invalid_parameter",
        ),
        (
            json!({"record_ids": [account(1)], "limit": 21}),
            "invalid_parameter",
        ),
        (
            json!({"record_ids": [account(1)], "top": 3}),
            "invalid_json",
        ),
    ] {
        let (status, answer) = post_cross_sell(&gateway, &body, true).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some(code)),
            "{body}: {answer}"
        );
    }
}

#[tokio::test]
async fn the_next_category_is_served_on_its_own_with_its_reason() {
    let (gateway, state) = start_gateway().await;
    let route = "/v1/next-category";

    let ask = json!({"record_ids": [account(1), account(2)]});
    let (status, body) = post(&gateway, route, &ask, true).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("no_model")),
        "{body}"
    );
    let (status, body) = post(&gateway, route, &ask, false).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));

    state.has_model.store(true, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let body = loop {
        let (status, body) = post(&gateway, route, &ask, true).await;
        if status == 200 {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cross-sell model never loaded: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(body["model_version"], "cross_sell-v2");
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 2, "{body}");
    // The bag buyer's next order is a lunch box: box orders follow bag orders.
    let bag_buyer = &results[0];
    assert_eq!(bag_buyer["record_id"], account(1));
    assert_eq!(bag_buyer["basis"], "history");
    assert_eq!(bag_buyer["orders_considered"], 1);
    let categories = bag_buyer["categories"].as_array().expect("categories");
    assert_eq!(categories.len(), 3, "the default is three: {bag_buyer}");
    assert_eq!(categories[0]["category"], "BOX", "{bag_buyer}");
    assert_eq!(categories[0]["because"], "follows_last_order");
    let shares: Vec<f64> = categories
        .iter()
        .map(|c| c["share"].as_f64().expect("share"))
        .collect();
    assert!(shares.windows(2).all(|w| w[0] >= w[1]), "{shares:?}");
    assert!(
        shares.iter().all(|s| (0.0..=1.0).contains(s)) && shares.iter().sum::<f64>() <= 1.0 + 1e-9
    );
    // The same guess as the cross-sell answer gives (one model, one history).
    let (_, both) = post_cross_sell(&gateway, &json!({"record_ids": [account(1)]}), true).await;
    assert_eq!(both["results"][0]["next_category"][0], categories[0]);
    // An account without purchases is told so, not given a habit it does not have.
    let newcomer = &results[1];
    assert_eq!(newcomer["basis"], "popularity", "{newcomer}");
    assert_eq!(newcomer["orders_considered"], 0);
    assert!(
        newcomer["categories"]
            .as_array()
            .expect("categories")
            .iter()
            .all(|c| c["because"] == "popular"),
        "{newcomer}"
    );
    let (status, one) = post(
        &gateway,
        route,
        &json!({"record_ids": [account(1)], "limit": 1}),
        true,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        one["results"][0]["categories"].as_array().map(Vec::len),
        Some(1)
    );

    for (body, code) in [
        (json!({"record_ids": []}), "empty_request"),
        (json!({"record_ids": [product(1)]}), "invalid_record_id"),
        (
            json!({"record_ids": [account(1)], "limit": 0}),
            "invalid_parameter",
        ),
        (
            json!({"record_ids": [account(1)], "limit": 11}),
            "invalid_parameter",
        ),
        (
            json!({"record_ids": [account(1)], "top": 3}),
            "invalid_json",
        ),
    ] {
        let (status, answer) = post(&gateway, route, &body, true).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some(code)),
            "{body}: {answer}"
        );
    }
}
