//! Purchases as the cross-sell model reads them: the whole org's purchase lines as one streamed
//! CSV for training, and the recent orders of up to 200 accounts for serving.
//!
//! Why CSV in the Online Retail columns: it is the format `sextant evaluate recommend` and the
//! trainer's cross-sell job already read, so a data scientist can download the store's export,
//! evaluate on it, or train on their own file, and the trainer needs one reader. Why streamed: at
//! the seeds' scale the export has billions of lines; it is produced a page of accounts at a time
//! (keyset on account id) into a bounded channel, so the store holds one page whatever the size,
//! and a database failure mid-way aborts the response instead of ending it cleanly, so the
//! reader can tell a cut export from a complete one.

use std::collections::HashMap;
use std::fmt::Write as _;

use actix_web::{HttpResponse, get, post, web};
use serde::Deserialize;
use sextant_contracts::api::{
    AccountPurchases, MAX_RECORDS_PER_CALL, PurchaseHistory, PurchaseHistoryRequest, PurchasedOrder,
};
use sextant_contracts::{ErrorBody, ErrorCode, OrgId};
use sextant_service_kit::ApiError;

use crate::AppState;
use crate::migration::DEFAULT_ORG;
use crate::store::{PAGE, PurchaseLine, Store, day_date};

/// The export's header: the Online Retail columns, with the product's category as `Family`.
pub const HEADER: &str =
    "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Family\n";

/// The default and largest number of orders returned per account.
const DEFAULT_ORDERS: u32 = 50;
const MAX_ORDERS: u32 = 100;

/// A CSV field, quoted when it needs to be.
fn field(out: &mut String, v: &str) {
    if v.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(v);
    }
}

/// One export row.
fn row(out: &mut String, l: &PurchaseLine) {
    field(out, &l.order_id);
    out.push(',');
    field(out, &l.product_id);
    out.push(',');
    field(out, l.name.as_deref().unwrap_or(&l.product_id));
    let _ = write!(
        out,
        ",{},{} 00:00:00,",
        l.quantity,
        day_date(l.day).format("%Y-%m-%d")
    );
    // The reader needs a positive price; a line without one still says what was bought.
    let _ = write!(
        out,
        "{},",
        l.unit_price.filter(|p| *p > 0.0).unwrap_or(0.01)
    );
    field(out, &l.account_id);
    out.push(',');
    field(out, l.category.as_deref().unwrap_or(""));
    out.push('\n');
}

type Tx = tokio::sync::mpsc::Sender<Result<web::Bytes, std::io::Error>>;

async fn produce(store: Store, org: String, tx: Tx) {
    if tx
        .send(Ok(web::Bytes::from_static(HEADER.as_bytes())))
        .await
        .is_err()
    {
        return;
    }
    let mut after: Option<String> = None;
    loop {
        let page = match store
            .accounts_with_orders(&org, after.as_deref(), PAGE)
            .await
        {
            Ok(p) => p,
            Err(e) => return fail(&tx, &e.to_string()).await,
        };
        let Some(last) = page.last().cloned() else {
            return;
        };
        let lines = match store.purchase_lines(&org, &page).await {
            Ok(l) => l,
            Err(e) => return fail(&tx, &e.to_string()).await,
        };
        let mut chunk = String::with_capacity(lines.len() * 80);
        for l in &lines {
            row(&mut chunk, l);
        }
        if !chunk.is_empty() && tx.send(Ok(web::Bytes::from(chunk))).await.is_err() {
            tracing::info!("Purchase export reader went away; stopped.");
            return;
        }
        after = Some(last);
    }
}

/// Ends the response with an error, which aborts it: the reader sees a cut transfer.
async fn fail(tx: &Tx, message: &str) {
    tracing::error!(%message, "Purchase export failed mid-stream.");
    let _ = tx
        .send(Err(std::io::Error::other(
            "purchase export failed; see the store's log",
        )))
        .await;
}

/// Which org to export.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ExportQuery {
    /// The org; the store's default org when absent.
    #[param(value_type = Option<String>, pattern = "^00D[0-9A-Za-z]{12}([0-9A-Za-z]{3})?$", format = "salesforce-org-id")]
    org_id: Option<OrgId>,
}

/// Every current purchase line of an org as CSV, streamed: lines (positive quantity) of orders
/// whose status counts as a purchase, in the Online Retail columns (`InvoiceNo` = order id,
/// `StockCode` = product id, `Description` = product name, `InvoiceDate` = the order's date,
/// `CustomerID` = account id, `Family` = the product's category). The trainer's cross-sell job
/// reads it. A failure part-way aborts the transfer (never a clean, shorter file).
#[utoipa::path(
    params(ExportQuery),
    responses(
        (status = 200, description = "Purchase lines", content_type = "text/csv", body = String),
        (status = 400, description = "A malformed org_id (code invalid_parameter)", body = ErrorBody),
    )
)]
#[get("/v1/purchases")]
pub async fn export_purchases(
    state: web::Data<AppState>,
    query: web::Query<ExportQuery>,
) -> HttpResponse {
    let org = query
        .org_id
        .as_ref()
        .map_or_else(|| DEFAULT_ORG.to_owned(), ToString::to_string);
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let store = state.store.clone();
    tokio::spawn(produce(store, org, tx));
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .streaming(body)
}

/// The recent purchases (orders whose status counts, with their products) of up to 200
/// accounts, oldest first; what the gateway's cross-sell answers are computed from. An account
/// without purchases (or unknown) has no orders.
#[utoipa::path(
    request_body = PurchaseHistoryRequest,
    responses(
        (status = 200, description = "Purchases per account, in request order", body = PurchaseHistory),
        (status = 400, description = "No ids (empty_request), over 200 (too_many_records), max_orders out of 1..=100 (invalid_parameter), malformed body (invalid_json)", body = ErrorBody),
    )
)]
#[post("/v1/purchases/history")]
pub async fn purchase_history(
    state: web::Data<AppState>,
    req: web::Json<PurchaseHistoryRequest>,
) -> Result<web::Json<PurchaseHistory>, ApiError> {
    if req.account_ids.is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::EmptyRequest,
            "account_ids is empty",
        ));
    }
    if req.account_ids.len() > MAX_RECORDS_PER_CALL {
        return Err(ApiError::bad_request(
            ErrorCode::TooManyRecords,
            format!(
                "at most {MAX_RECORDS_PER_CALL} account ids per call, got {}",
                req.account_ids.len()
            ),
        ));
    }
    let max_orders = req.max_orders.unwrap_or(DEFAULT_ORDERS);
    if !(1..=MAX_ORDERS).contains(&max_orders) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidParameter,
            format!("max_orders must be between 1 and {MAX_ORDERS}, got {max_orders}"),
        ));
    }
    let org = req
        .org_id
        .as_ref()
        .map_or_else(|| DEFAULT_ORG.to_owned(), ToString::to_string);
    let mut ids: Vec<String> = req.account_ids.iter().map(ToString::to_string).collect();
    ids.sort();
    ids.dedup();
    let lines = state
        .store
        .purchase_lines(&org, &ids)
        .await
        .map_err(|e| ApiError::internal("database", e))?;
    // Lines come ordered by account, day, order: group them into orders.
    let mut by_account: HashMap<String, Vec<PurchasedOrder>> = HashMap::new();
    for l in lines {
        let orders = by_account.entry(l.account_id).or_default();
        match orders.last_mut() {
            Some(o) if o.order_id == l.order_id => o.product_ids.push(l.product_id),
            _ => orders.push(PurchasedOrder {
                order_id: l.order_id,
                date: day_date(l.day),
                product_ids: vec![l.product_id],
            }),
        }
    }
    let mut seen = std::collections::HashSet::new();
    let accounts = req
        .account_ids
        .iter()
        .filter(|id| seen.insert((*id).clone()))
        .map(|id| {
            let mut orders = by_account.remove(&id.to_string()).unwrap_or_default();
            let keep = max_orders as usize;
            if orders.len() > keep {
                orders.drain(..orders.len() - keep);
            }
            AccountPurchases {
                account_id: id.clone(),
                orders,
            }
        })
        .collect();
    Ok(web::Json(PurchaseHistory { accounts }))
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    #[test]
    fn rows_quote_what_csv_needs_and_fill_a_missing_price() {
        let mut out = String::new();
        row(
            &mut out,
            &PurchaseLine {
                account_id: "001000000000001AAA".into(),
                order_id: "801000000000001AAA".into(),
                day: crate::store::day_number(
                    NaiveDate::from_ymd_opt(2024, 3, 1).unwrap_or_default(),
                ),
                product_id: "01t000000000001AAA".into(),
                name: Some("MUG, \"LARGE\"".into()),
                category: None,
                quantity: 2.0,
                unit_price: None,
            },
        );
        assert_eq!(
            out,
            "801000000000001AAA,01t000000000001AAA,\"MUG, \"\"LARGE\"\"\",2,2024-03-01 00:00:00,0.01,001000000000001AAA,\n"
        );
    }
}
