//! SOQL records → typed CRM records, one function per object, with the SOQL that reads them.

use serde_json::{Map, Value};
use sextant_contracts::SalesforceId;
use sextant_contracts::api::IngestBatch;
use sextant_contracts::records::{
    AccountRecord, CaseRecord, ContactRecord, OrderItemRecord, OrderRecord, ProductRecord,
};
use sextant_salesforce::wire::{FieldError, Record};

/// The objects synced, in dependency order (parents before children), with the fields read.
/// Every object is read in `SystemModstamp, Id` order from its watermark (see [`crate::sync`]).
pub const OBJECTS: [(&str, &str); 6] = [
    (
        "Account",
        "Id, Name, BillingCountry, Industry, CreatedDate, LastModifiedDate, SystemModstamp",
    ),
    (
        "Contact",
        "Id, AccountId, FirstName, LastName, Email, LastModifiedDate, SystemModstamp",
    ),
    (
        "Product2",
        "Id, Name, ProductCode, Family, LastModifiedDate, SystemModstamp",
    ),
    (
        "Order",
        "Id, AccountId, EffectiveDate, Status, OrderNumber, LastModifiedDate, SystemModstamp",
    ),
    (
        "OrderItem",
        "Id, OrderId, Product2Id, Quantity, UnitPrice, LastModifiedDate, SystemModstamp",
    ),
    (
        "Case",
        "Id, AccountId, Subject, Description, Status, CreatedDate, LastModifiedDate, SystemModstamp",
    ),
];

/// The fields read of a synced object, or `None` when it is not one.
pub fn fields_of(object: &str) -> Option<&'static str> {
    OBJECTS
        .iter()
        .find(|(o, _)| o.eq_ignore_ascii_case(object))
        .map(|(_, f)| *f)
}

/// A record that could not be mapped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{object} {id}: {problem}")]
pub struct MappingError {
    pub object: String,
    pub id: String,
    pub problem: String,
}

fn id(r: &Record<'_>, field: &str) -> Result<SalesforceId, FieldError> {
    let raw = r.str(field)?;
    SalesforceId::parse(&raw).map_err(|e| FieldError {
        field: field.to_owned(),
        problem: e.to_string(),
    })
}

fn opt_id(r: &Record<'_>, field: &str) -> Result<Option<SalesforceId>, FieldError> {
    r.opt_str(field)?
        .map(|raw| {
            SalesforceId::parse(&raw).map_err(|e| FieldError {
                field: field.to_owned(),
                problem: e.to_string(),
            })
        })
        .transpose()
}

/// Maps the records of one object into an ingest batch; the first record that cannot be mapped
/// fails the whole batch (see [`to_batch_lenient`] for the sync's behaviour).
pub fn to_batch(object: &str, records: &[Map<String, Value>]) -> Result<IngestBatch, MappingError> {
    let (batch, mut errors) = to_batch_lenient(object, records)?;
    if errors.is_empty() {
        Ok(batch)
    } else {
        Err(errors.swap_remove(0))
    }
}

/// Maps what can be mapped and returns, beside the batch, each record that could not be (with
/// its reason), so a sync can quarantine it and go on. Fails only for an object it does not know.
pub fn to_batch_lenient(
    object: &str,
    records: &[Map<String, Value>],
) -> Result<(IngestBatch, Vec<MappingError>), MappingError> {
    let fail = |rec: &Map<String, Value>, e: FieldError| MappingError {
        object: object.to_owned(),
        id: rec
            .get("Id")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned(),
        problem: e.to_string(),
    };
    let mut errors = Vec::new();
    macro_rules! map {
        ($variant:ident, $f:expr) => {
            IngestBatch::$variant(
                records
                    .iter()
                    .filter_map(|rec| match $f(Record(rec)) {
                        Ok(v) => Some(v),
                        Err(e) => {
                            errors.push(fail(rec, e));
                            None
                        }
                    })
                    .collect(),
            )
        };
    }
    let batch = match object {
        "Account" => map!(
            Account,
            |r: Record<'_>| -> Result<AccountRecord, FieldError> {
                Ok(AccountRecord {
                    id: id(&r, "Id")?,
                    name: r.str("Name")?,
                    billing_country: r.opt_str("BillingCountry")?,
                    industry: r.opt_str("Industry")?,
                    created_date: r.datetime("CreatedDate")?,
                    last_modified_date: r.datetime("LastModifiedDate")?,
                    system_modstamp: r.opt_datetime("SystemModstamp")?,
                })
            }
        ),
        "Contact" => map!(
            Contact,
            |r: Record<'_>| -> Result<ContactRecord, FieldError> {
                Ok(ContactRecord {
                    id: id(&r, "Id")?,
                    account_id: opt_id(&r, "AccountId")?,
                    first_name: r.opt_str("FirstName")?,
                    last_name: r.str("LastName")?,
                    email: r.opt_str("Email")?,
                    last_modified_date: r.datetime("LastModifiedDate")?,
                    system_modstamp: r.opt_datetime("SystemModstamp")?,
                })
            }
        ),
        "Product2" => map!(
            Product2,
            |r: Record<'_>| -> Result<ProductRecord, FieldError> {
                Ok(ProductRecord {
                    id: id(&r, "Id")?,
                    name: r.str("Name")?,
                    product_code: r.opt_str("ProductCode")?,
                    family: r.opt_str("Family")?,
                    last_modified_date: r.datetime("LastModifiedDate")?,
                    system_modstamp: r.opt_datetime("SystemModstamp")?,
                })
            }
        ),
        "Order" => map!(Order, |r: Record<'_>| -> Result<OrderRecord, FieldError> {
            Ok(OrderRecord {
                id: id(&r, "Id")?,
                account_id: id(&r, "AccountId")?,
                effective_date: r.date("EffectiveDate")?,
                status: r.str("Status")?,
                order_number: r.opt_str("OrderNumber")?,
                last_modified_date: r.datetime("LastModifiedDate")?,
                system_modstamp: r.opt_datetime("SystemModstamp")?,
            })
        }),
        "OrderItem" => map!(
            OrderItem,
            |r: Record<'_>| -> Result<OrderItemRecord, FieldError> {
                Ok(OrderItemRecord {
                    id: id(&r, "Id")?,
                    order_id: id(&r, "OrderId")?,
                    product_id: opt_id(&r, "Product2Id")?,
                    quantity: r.f64("Quantity")?,
                    unit_price: r.f64("UnitPrice")?,
                    last_modified_date: r.datetime("LastModifiedDate")?,
                    system_modstamp: r.opt_datetime("SystemModstamp")?,
                })
            }
        ),
        "Case" => map!(Case, |r: Record<'_>| -> Result<CaseRecord, FieldError> {
            Ok(CaseRecord {
                id: id(&r, "Id")?,
                account_id: opt_id(&r, "AccountId")?,
                subject: r.opt_str("Subject")?,
                description: r.opt_str("Description")?,
                status: r.opt_str("Status")?,
                created_date: r.datetime("CreatedDate")?,
                last_modified_date: r.datetime("LastModifiedDate")?,
                system_modstamp: r.opt_datetime("SystemModstamp")?,
            })
        }),
        other => {
            return Err(MappingError {
                object: other.to_owned(),
                id: String::new(),
                problem: "not a synced object".into(),
            });
        }
    };
    Ok((batch, errors))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_salesforce_json_with_nulls_and_offsets() {
        let rec = json!({
            "attributes": {"type": "Order", "url": "/services/data/v62.0/sobjects/Order/8015g000000001"},
            "Id": "8015g0000000001", "AccountId": "0015g0000000001", "EffectiveDate": "2011-01-10",
            "Status": "Activated", "OrderNumber": null, "LastModifiedDate": "2011-01-10T09:00:00.000+0000",
            "SystemModstamp": "2011-01-10T09:00:00.000+0000"
        });
        let batch =
            to_batch("Order", &[rec.as_object().cloned().unwrap_or_default()]).expect("maps");
        match batch {
            IngestBatch::Order(o) => {
                assert_eq!(o[0].id.as_str().len(), 18, "15-char ids are widened");
                assert_eq!(o[0].order_number, None);
                assert_eq!(o[0].effective_date.to_string(), "2011-01-10");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lenient_mapping_keeps_the_good_records_and_names_the_bad() {
        let good = json!({"Id": "0015g0000000001", "Name": "A", "BillingCountry": null, "Industry": null,
            "CreatedDate": "2011-01-10T09:00:00.000+0000", "LastModifiedDate": "2011-01-10T09:00:00.000+0000",
            "SystemModstamp": "2011-01-10T09:00:00.000+0000"});
        let bad = json!({"Id": "0015g0000000002", "Name": "B", "BillingCountry": null, "Industry": null,
            "CreatedDate": "yesterday", "LastModifiedDate": "2011-01-10T09:00:00.000+0000"});
        let records: Vec<Map<String, Value>> = [good, bad]
            .iter()
            .filter_map(|v| v.as_object().cloned())
            .collect();
        let Ok((IngestBatch::Account(accounts), errors)) = to_batch_lenient("Account", &records)
        else {
            panic!("maps");
        };
        assert_eq!(accounts.len(), 1);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].id, "0015g0000000002");
        assert!(errors[0].problem.contains("CreatedDate"), "{}", errors[0]);
        assert!(
            to_batch("Account", &records).is_err(),
            "the strict form refuses the batch"
        );
        assert!(to_batch_lenient("Widget", &records).is_err());
    }

    #[test]
    fn a_bad_record_is_reported_not_dropped() {
        let rec = json!({"Id": "0015g0000000001", "Name": null, "BillingCountry": null, "Industry": null,
            "CreatedDate": "2011-01-10T09:00:00.000+0000", "LastModifiedDate": "2011-01-10T09:00:00.000+0000"});
        let err = to_batch("Account", &[rec.as_object().cloned().unwrap_or_default()])
            .expect_err("Name is required");
        assert_eq!(err.id, "0015g0000000001");
        assert!(err.problem.contains("Name"), "{err}");
    }
}
