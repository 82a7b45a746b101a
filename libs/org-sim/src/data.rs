//! The simulated org's objects and records.
//!
//! Each object has a schema (field names and types, in describe order) and rows keyed by field
//! name. The embedded sample is mapped to standard objects the way a retailer's org would hold
//! it: a customer is an Account with one Contact, an invoice is an Order, an invoice line an
//! OrderItem, a stock code a Product2, and review sentences are support Cases.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::{Map, Value};
use sextant_contracts::SalesforceId;

/// A field's type, as far as the SOQL evaluator and the JSON encoding care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Id,
    Reference,
    String,
    TextArea,
    Double,
    Currency,
    Percent,
    Picklist,
    Boolean,
    Date,
    DateTime,
}

/// One field of an object.
#[derive(Debug, Clone)]
pub struct FieldDef {
    pub name: &'static str,
    pub kind: FieldType,
}

impl FieldDef {
    /// The object a reference points at, as describe's `referenceTo` lists it: `AccountId` and
    /// `Account__c` point at `Account` (the simulator's naming rule; empty for other kinds).
    pub fn reference_to(&self) -> Option<&'static str> {
        if self.kind != FieldType::Reference {
            return None;
        }
        self.name
            .strip_suffix("__c")
            .or_else(|| self.name.strip_suffix("Id"))
            .filter(|s| !s.is_empty())
    }

    /// The describe `type` of the field.
    pub fn describe_type(&self) -> &'static str {
        match self.kind {
            FieldType::Id => "id",
            FieldType::Reference => "reference",
            FieldType::String => "string",
            FieldType::TextArea => "textarea",
            FieldType::Double => "double",
            FieldType::Currency => "currency",
            FieldType::Percent => "percent",
            FieldType::Picklist => "picklist",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::DateTime => "datetime",
        }
    }
}

/// An object (table) of the org.
#[derive(Debug, Clone)]
pub struct SObject {
    pub name: &'static str,
    pub key_prefix: &'static str,
    pub fields: Vec<FieldDef>,
    /// Rows in Id order; every row has every field (null when empty).
    pub rows: Vec<Map<String, Value>>,
}

impl SObject {
    fn new(
        name: &'static str,
        key_prefix: &'static str,
        fields: &[(&'static str, FieldType)],
    ) -> Self {
        Self {
            name,
            key_prefix,
            fields: fields
                .iter()
                .map(|&(name, kind)| FieldDef { name, kind })
                .collect(),
            rows: Vec::new(),
        }
    }

    /// The field of that name, compared case-insensitively as Salesforce does.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

/// All objects of the org.
#[derive(Debug, Clone, Default)]
pub struct OrgData {
    objects: BTreeMap<String, SObject>,
    /// Data Cloud objects (DMOs `…__dlm`, DLOs `…__dll`): read only through Query API v2.
    data_cloud: BTreeMap<String, SObject>,
}

/// Why the sample could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("org sample data: {0}")]
pub struct DataError(String);

const SAMPLE_CSV_GZ: &[u8] = include_bytes!("../data/online_retail_sample.csv.gz");
const CASE_SNIPPETS: &str = include_str!("../data/case_snippets.tsv");

/// The shipped case texts with their human sentiment ratings (VADER Amazon snippets,
/// `id<TAB>mean rating −4..4<TAB>text`): the simulator's case descriptions, and labelled text a
/// sentiment model can be trained on.
#[must_use]
pub fn case_snippets() -> &'static str {
    CASE_SNIPPETS
}
/// Second and third characters after the key prefix: the "pod" of minted ids.
const POD: &str = "5g";

use FieldType as T;

fn timestamp_fields() -> [(&'static str, FieldType); 2] {
    [
        ("CreatedDate", T::DateTime),
        ("LastModifiedDate", T::DateTime),
    ]
}

impl OrgData {
    /// An object by name, case-insensitively.
    pub fn object(&self, name: &str) -> Option<&SObject> {
        self.objects
            .values()
            .find(|o| o.name.eq_ignore_ascii_case(name))
    }

    /// Mutable access, for tests that edit records.
    pub fn object_mut(&mut self, name: &str) -> Option<&mut SObject> {
        self.objects
            .values_mut()
            .find(|o| o.name.eq_ignore_ascii_case(name))
    }

    /// A Data Cloud object (DMO or DLO) by name, case-insensitively.
    pub fn dc_object(&self, name: &str) -> Option<&SObject> {
        self.data_cloud
            .values()
            .find(|o| o.name.eq_ignore_ascii_case(name))
    }

    /// Mutable access to a Data Cloud object, for tests that edit rows.
    pub fn dc_object_mut(&mut self, name: &str) -> Option<&mut SObject> {
        self.data_cloud
            .values_mut()
            .find(|o| o.name.eq_ignore_ascii_case(name))
    }

    /// Record counts per object.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.objects
            .iter()
            .map(|(k, o)| (k.clone(), o.rows.len()))
            .collect()
    }

    /// The org loaded with the sample embedded in this crate.
    pub fn embedded_sample() -> Result<Self, DataError> {
        let mut csv_text = String::new();
        flate2::read::GzDecoder::new(SAMPLE_CSV_GZ)
            .read_to_string(&mut csv_text)
            .map_err(|e| DataError(format!("gunzip: {e}")))?;
        Self::from_online_retail(&csv_text, CASE_SNIPPETS)
    }

    /// The org loaded with only the first `lines` invoice lines of the embedded sample (small
    /// orgs for end-to-end tests; the sample is in date order, so these are its first weeks).
    pub fn embedded_sample_head(lines: usize) -> Result<Self, DataError> {
        let mut csv_text = String::new();
        flate2::read::GzDecoder::new(SAMPLE_CSV_GZ)
            .read_to_string(&mut csv_text)
            .map_err(|e| DataError(format!("gunzip: {e}")))?;
        let end = csv_text
            .match_indices('\n')
            .nth(lines)
            .map_or(csv_text.len(), |(i, _)| i + 1);
        Self::from_online_retail(&csv_text[..end], CASE_SNIPPETS)
    }

    /// Builds the org from Online Retail invoice lines (CSV text with the source's header) and
    /// tab-separated review snippets (`id<TAB>sentiment<TAB>text`).
    pub fn from_online_retail(csv_text: &str, snippets: &str) -> Result<Self, DataError> {
        let mut lines = Vec::new();
        let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
        for (i, row) in reader.records().enumerate() {
            let row = row.map_err(|e| DataError(format!("line {}: {e}", i + 2)))?;
            lines.push(Line::parse(&row).map_err(|e| DataError(format!("line {}: {e}", i + 2)))?);
        }
        if lines.is_empty() {
            return Err(DataError("no invoice lines".into()));
        }
        let mut org = Self::default();
        let mut account = SObject::new(
            "Account",
            "001",
            &[
                ("Id", T::Id),
                ("Name", T::String),
                ("AccountNumber", T::String),
                ("BillingCountry", T::String),
                ("Industry", T::String),
                ("Churn_Score__c", T::Double),
                ("Sextant_Model_Version__c", T::String),
                timestamp_fields()[0],
                timestamp_fields()[1],
            ],
        );
        let mut contact = SObject::new(
            "Contact",
            "003",
            &[
                ("Id", T::Id),
                ("AccountId", T::Reference),
                ("FirstName", T::String),
                ("LastName", T::String),
                ("Email", T::String),
                timestamp_fields()[0],
                timestamp_fields()[1],
            ],
        );
        let mut product = SObject::new(
            "Product2",
            "01t",
            &[
                ("Id", T::Id),
                ("Name", T::String),
                ("ProductCode", T::String),
                ("IsActive", T::Boolean),
                timestamp_fields()[0],
                timestamp_fields()[1],
            ],
        );
        let mut order = SObject::new(
            "Order",
            "801",
            &[
                ("Id", T::Id),
                ("AccountId", T::Reference),
                ("EffectiveDate", T::Date),
                ("Status", T::String),
                ("OrderNumber", T::String),
                ("TotalAmount", T::Currency),
                timestamp_fields()[0],
                timestamp_fields()[1],
            ],
        );
        let mut item = SObject::new(
            "OrderItem",
            "802",
            &[
                ("Id", T::Id),
                ("OrderId", T::Reference),
                ("Product2Id", T::Reference),
                ("Quantity", T::Double),
                ("UnitPrice", T::Currency),
                ("TotalPrice", T::Currency),
                timestamp_fields()[0],
                timestamp_fields()[1],
            ],
        );
        let mut case = SObject::new(
            "Case",
            "500",
            &[
                ("Id", T::Id),
                ("AccountId", T::Reference),
                ("Subject", T::String),
                ("Description", T::TextArea),
                ("Status", T::String),
                ("Origin", T::String),
                timestamp_fields()[0],
                timestamp_fields()[1],
            ],
        );

        // A custom object, as customers keep behaviour: a web visit of an account (standard
        // fields plus `__c` ones of several types, a nullable number among them).
        let mut visit = SObject::new(
            "Web_Visit__c",
            "a0V",
            &[
                ("Id", T::Id),
                ("Name", T::String),
                ("Account__c", T::Reference),
                ("Visit_Date__c", T::DateTime),
                ("Duration_Seconds__c", T::Double),
                ("Channel__c", T::Picklist),
                ("Status__c", T::Picklist),
                timestamp_fields()[0],
                timestamp_fields()[1],
            ],
        );
        // A Data Cloud data model object of engagements (what `ssot__Engagement__dlm` holds).
        let mut engagement = SObject::new(
            "ssot__Engagement__dlm",
            "",
            &[
                ("ssot__Id__c", T::String),
                ("ssot__AccountId__c", T::String),
                ("ssot__EngagementChannel__c", T::String),
                ("ssot__EngagementDateTm__c", T::DateTime),
                ("ssot__Value__c", T::Double),
                ("ssot__LastModifiedDate__c", T::DateTime),
            ],
        );

        // Customers in CustomerID order; products in first-seen order; invoices in file order.
        let mut customers: BTreeMap<u32, (String, DateTime<Utc>, DateTime<Utc>)> = BTreeMap::new();
        let mut products: Vec<(String, String, DateTime<Utc>)> = Vec::new();
        let mut product_index: HashMap<String, usize> = HashMap::new();
        let mut invoices: Vec<(String, u32, DateTime<Utc>, f64)> = Vec::new();
        let mut invoice_index: HashMap<String, usize> = HashMap::new();
        for l in &lines {
            let entry = customers
                .entry(l.customer)
                .or_insert((l.country.clone(), l.at, l.at));
            entry.1 = entry.1.min(l.at);
            entry.2 = entry.2.max(l.at);
            if !product_index.contains_key(&l.stock_code) {
                product_index.insert(l.stock_code.clone(), products.len());
                let name = if l.description.is_empty() {
                    l.stock_code.clone()
                } else {
                    l.description.clone()
                };
                products.push((l.stock_code.clone(), name, l.at));
            }
            let idx = *invoice_index.entry(l.invoice.clone()).or_insert_with(|| {
                invoices.push((l.invoice.clone(), l.customer, l.at, 0.0));
                invoices.len() - 1
            });
            invoices[idx].3 += l.quantity * l.unit_price;
        }

        let mut account_ids: HashMap<u32, SalesforceId> = HashMap::new();
        for (n, (customer, (country, first, last))) in customers.iter().enumerate() {
            let id = SalesforceId::from_parts("001", POD, n as u64 + 1);
            account_ids.insert(*customer, id.clone());
            account.rows.push(row(&[
                ("Id", Value::from(id.as_str())),
                (
                    "Name",
                    Value::from(format!("Online Retail Customer {customer}")),
                ),
                ("AccountNumber", Value::from(customer.to_string())),
                ("BillingCountry", Value::from(country.as_str())),
                ("Industry", Value::Null),
                ("Churn_Score__c", Value::Null),
                ("Sextant_Model_Version__c", Value::Null),
                ("CreatedDate", Value::from(sf_datetime(first))),
                ("LastModifiedDate", Value::from(sf_datetime(last))),
            ]));
            contact.rows.push(row(&[
                (
                    "Id",
                    Value::from(SalesforceId::from_parts("003", POD, n as u64 + 1).as_str()),
                ),
                ("AccountId", Value::from(id.as_str())),
                ("FirstName", Value::Null),
                ("LastName", Value::from(format!("Customer {customer}"))),
                (
                    "Email",
                    Value::from(format!("customer{customer}@example.com")),
                ),
                ("CreatedDate", Value::from(sf_datetime(first))),
                ("LastModifiedDate", Value::from(sf_datetime(first))),
            ]));
        }
        let mut product_ids = Vec::with_capacity(products.len());
        for (n, (code, name, first)) in products.iter().enumerate() {
            let id = SalesforceId::from_parts("01t", POD, n as u64 + 1);
            product.rows.push(row(&[
                ("Id", Value::from(id.as_str())),
                ("Name", Value::from(name.as_str())),
                ("ProductCode", Value::from(code.as_str())),
                ("IsActive", Value::from(true)),
                ("CreatedDate", Value::from(sf_datetime(first))),
                ("LastModifiedDate", Value::from(sf_datetime(first))),
            ]));
            product_ids.push(id);
        }
        let mut order_ids = Vec::with_capacity(invoices.len());
        for (n, (invoice, customer, at, total)) in invoices.iter().enumerate() {
            let id = SalesforceId::from_parts("801", POD, n as u64 + 1);
            let account_id = account_ids
                .get(customer)
                .map(|a| a.as_str().to_owned())
                .unwrap_or_default();
            order.rows.push(row(&[
                ("Id", Value::from(id.as_str())),
                ("AccountId", Value::from(account_id)),
                (
                    "EffectiveDate",
                    Value::from(at.format("%Y-%m-%d").to_string()),
                ),
                ("Status", Value::from("Activated")),
                ("OrderNumber", Value::from(invoice.as_str())),
                ("TotalAmount", money(*total)),
                ("CreatedDate", Value::from(sf_datetime(at))),
                ("LastModifiedDate", Value::from(sf_datetime(at))),
            ]));
            order_ids.push(id);
            // A web visit the day before each purchase; every tenth without a duration.
            let seen = *at - chrono::Duration::days(1);
            let duration = if n % 10 == 9 {
                Value::Null
            } else {
                Value::from(((n * 37) % 600 + 30) as f64)
            };
            visit.rows.push(row(&[
                (
                    "Id",
                    Value::from(SalesforceId::from_parts("a0V", POD, n as u64 + 1).as_str()),
                ),
                ("Name", Value::from(format!("WV-{:06}", n + 1))),
                ("Account__c", order.rows[n]["AccountId"].clone()),
                ("Visit_Date__c", Value::from(sf_datetime(&seen))),
                ("Duration_Seconds__c", duration),
                ("Channel__c", Value::from(["Web", "Email", "Mobile"][n % 3])),
                (
                    "Status__c",
                    Value::from(if n % 7 == 6 { "Bounced" } else { "Completed" }),
                ),
                ("CreatedDate", Value::from(sf_datetime(&seen))),
                ("LastModifiedDate", Value::from(sf_datetime(&seen))),
            ]));
        }
        for (n, l) in lines.iter().enumerate() {
            let order_id = &order_ids[invoice_index[&l.invoice]];
            let product_id = &product_ids[product_index[&l.stock_code]];
            item.rows.push(row(&[
                (
                    "Id",
                    Value::from(SalesforceId::from_parts("802", POD, n as u64 + 1).as_str()),
                ),
                ("OrderId", Value::from(order_id.as_str())),
                ("Product2Id", Value::from(product_id.as_str())),
                ("Quantity", Value::from(l.quantity)),
                ("UnitPrice", Value::from(l.unit_price)),
                ("TotalPrice", money(l.quantity * l.unit_price)),
                ("CreatedDate", Value::from(sf_datetime(&l.at))),
                ("LastModifiedDate", Value::from(sf_datetime(&l.at))),
            ]));
        }
        // Cases: snippet i belongs to the (7i mod n)-th customer and is dated at that
        // customer's first purchase plus i days.
        let customer_list: Vec<_> = customers.iter().collect();
        for (n, snippet) in snippets
            .lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
        {
            let text = snippet.splitn(3, '\t').nth(2).unwrap_or(snippet).trim();
            let (customer, (_, first, _)) = customer_list[(7 * n) % customer_list.len()];
            let at = *first + chrono::Duration::days(n as i64);
            let subject: String = text.chars().take(60).collect();
            case.rows.push(row(&[
                (
                    "Id",
                    Value::from(SalesforceId::from_parts("500", POD, n as u64 + 1).as_str()),
                ),
                ("AccountId", Value::from(account_ids[customer].as_str())),
                ("Subject", Value::from(subject)),
                ("Description", Value::from(text)),
                ("Status", Value::from("Closed")),
                ("Origin", Value::from("Web")),
                ("CreatedDate", Value::from(sf_datetime(&at))),
                ("LastModifiedDate", Value::from(sf_datetime(&at))),
            ]));
        }
        // Data Cloud engagements: an email open a week after each case, worth its snippet's length.
        for (n, c) in case.rows.iter().enumerate() {
            let at = c["CreatedDate"]
                .as_str()
                .and_then(|s| chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.3f%z").ok())
                .map(|d| d.with_timezone(&Utc) + chrono::Duration::days(7))
                .unwrap_or_default();
            let text_len = c["Description"].as_str().map_or(0, str::len);
            engagement.rows.push(row(&[
                ("ssot__Id__c", Value::from(format!("ENG-{:06}", n + 1))),
                ("ssot__AccountId__c", c["AccountId"].clone()),
                ("ssot__EngagementChannel__c", Value::from("email_open")),
                ("ssot__EngagementDateTm__c", Value::from(sf_datetime(&at))),
                ("ssot__Value__c", Value::from(text_len as f64)),
                ("ssot__LastModifiedDate__c", Value::from(sf_datetime(&at))),
            ]));
        }
        org.data_cloud
            .insert(engagement.name.to_owned(), engagement);
        product.fields.push(FieldDef {
            name: "Family",
            kind: T::String,
        });
        for r in &mut product.rows {
            // The sample's catalogue has no families: categories come from product names.
            r.insert("Family".into(), Value::Null);
        }
        for mut o in [account, contact, product, order, item, case, visit] {
            // Every object has SystemModstamp (the sample's records were last touched when they
            // were last modified) and IsDeleted, as in a real org.
            o.fields.push(FieldDef {
                name: "SystemModstamp",
                kind: T::DateTime,
            });
            o.fields.push(FieldDef {
                name: "IsDeleted",
                kind: T::Boolean,
            });
            for r in &mut o.rows {
                let stamp = r.get("LastModifiedDate").cloned().unwrap_or(Value::Null);
                r.insert("SystemModstamp".into(), stamp);
                r.insert("IsDeleted".into(), Value::from(false));
            }
            org.objects.insert(o.name.to_owned(), o);
        }
        Ok(org)
    }
}

impl OrgData {
    /// Adds `extra` generated order lines (for scale tests and benchmarks): each points at an
    /// existing order and product, with a `SystemModstamp` one second after the previous one from
    /// 2012-01-01, so watermarks and paging see a large, ordered object.
    pub fn with_extra_order_lines(mut self, extra: usize) -> Self {
        let orders: Vec<Value> = self
            .object("Order")
            .map(|o| o.rows.iter().map(|r| r["Id"].clone()).collect())
            .unwrap_or_default();
        let products: Vec<Value> = self
            .object("Product2")
            .map(|o| o.rows.iter().map(|r| r["Id"].clone()).collect())
            .unwrap_or_default();
        let Some(items) = self.object_mut("OrderItem") else {
            return self;
        };
        if orders.is_empty() || products.is_empty() {
            return self;
        }
        let start = items.rows.len() as u64;
        let base = Utc
            .with_ymd_and_hms(2012, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default();
        items.rows.reserve(extra);
        for n in 0..extra as u64 {
            let at = sf_datetime(&(base + chrono::Duration::seconds(n as i64)));
            let q = (n % 12 + 1) as f64;
            let price = ((n * 37) % 1000) as f64 / 100.0 + 0.5;
            items.rows.push(row(&[
                (
                    "Id",
                    Value::from(SalesforceId::from_parts("802", POD, start + n + 1).as_str()),
                ),
                ("OrderId", orders[(n as usize * 7) % orders.len()].clone()),
                (
                    "Product2Id",
                    products[(n as usize * 13) % products.len()].clone(),
                ),
                ("Quantity", Value::from(q)),
                ("UnitPrice", Value::from(price)),
                ("TotalPrice", money(q * price)),
                ("CreatedDate", Value::from(at.clone())),
                ("LastModifiedDate", Value::from(at.clone())),
                ("SystemModstamp", Value::from(at)),
                ("IsDeleted", Value::from(false)),
            ]));
        }
        self
    }
}

fn row(fields: &[(&str, Value)]) -> Map<String, Value> {
    fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn money(x: f64) -> Value {
    Value::from((x * 100.0).round() / 100.0)
}

/// Salesforce's datetime form: `2011-07-07T00:37:00.000+0000`.
pub fn sf_datetime(dt: &DateTime<Utc>) -> String {
    dt.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// One invoice line of the Online Retail data.
struct Line {
    invoice: String,
    stock_code: String,
    description: String,
    quantity: f64,
    at: DateTime<Utc>,
    unit_price: f64,
    customer: u32,
    country: String,
}

impl Line {
    fn parse(row: &csv::StringRecord) -> Result<Self, String> {
        let get = |i: usize| row.get(i).ok_or_else(|| format!("column {i} missing"));
        let at = NaiveDateTime::parse_from_str(get(4)?, "%Y-%m-%d %H:%M:%S")
            .map_err(|e| format!("InvoiceDate: {e}"))?;
        Ok(Self {
            invoice: get(0)?.to_owned(),
            stock_code: get(1)?.to_owned(),
            description: get(2)?.to_owned(),
            quantity: get(3)?.parse().map_err(|e| format!("Quantity: {e}"))?,
            // The source's times are UK wall-clock; we read them as UTC.
            at: Utc.from_utc_datetime(&at),
            unit_price: get(5)?.parse().map_err(|e| format!("UnitPrice: {e}"))?,
            customer: get(6)?.parse().map_err(|e| format!("CustomerID: {e}"))?,
            country: get(7)?.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_sample_maps_to_standard_objects() {
        let org = OrgData::embedded_sample().expect("loads");
        let counts = org.counts();
        assert_eq!(counts["Account"], 271);
        assert_eq!(counts["Contact"], 271);
        assert_eq!(counts["OrderItem"], 23_264);
        assert_eq!(counts["Case"], 149);
        assert!(
            counts["Order"] > 271 && counts["Product2"] > 100,
            "{counts:?}"
        );
        // Every order points at an existing account; totals equal the sum of their lines.
        let accounts: std::collections::HashSet<&str> = org
            .object("Account")
            .expect("a")
            .rows
            .iter()
            .filter_map(|r| r["Id"].as_str())
            .collect();
        let orders = &org.object("order").expect("case-insensitive").rows;
        assert!(
            orders
                .iter()
                .all(|o| accounts.contains(o["AccountId"].as_str().unwrap_or_default()))
        );
        let first = &orders[0];
        let lines_total: f64 = org
            .object("OrderItem")
            .expect("items")
            .rows
            .iter()
            .filter(|i| i["OrderId"] == first["Id"])
            .filter_map(|i| i["TotalPrice"].as_f64())
            .sum();
        let total = first["TotalAmount"].as_f64().expect("number");
        assert!(
            (total - lines_total).abs() < 0.05,
            "{total} vs {lines_total}"
        );
        // Ids are valid 18-character Salesforce ids with the object's key prefix.
        for (object, prefix) in [("Account", "001"), ("Order", "801"), ("Case", "500")] {
            for r in &org.object(object).expect("o").rows {
                let id = SalesforceId::parse(r["Id"].as_str().expect("string")).expect("valid id");
                assert_eq!(id.key_prefix(), prefix);
            }
        }
    }
}
