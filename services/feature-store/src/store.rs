//! Database access: idempotent upserts and the reads that features are built from.

use std::collections::HashMap;

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectOptions, Database, DatabaseConnection, DbErr, EntityTrait, IntoActiveModel,
    Iterable, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use sextant_contracts::SalesforceId;
use sextant_contracts::api::IngestBatch;
use sextant_features::OrderFact;

use crate::entities::{account, case, contact, order, order_item, product};
use crate::migration::Migrator;

/// Rows per INSERT statement; keeps well under SQLite's and PostgreSQL's bind-parameter limits.
const CHUNK: usize = 500;

/// The feature store's database.
#[derive(Debug, Clone)]
pub struct Store {
    db: DatabaseConnection,
}

/// Upserts `models` into `$entity` by primary key, updating every other column.
macro_rules! upsert {
    ($txn:expr, $module:ident, $models:expr) => {{
        let update: Vec<$module::Column> = $module::Column::iter()
            .filter(|c| !matches!(c, $module::Column::Id))
            .collect();
        let mut n = 0u64;
        for chunk in $models.chunks(CHUNK) {
            let on_conflict = OnConflict::column($module::Column::Id)
                .update_columns(update.clone())
                .to_owned();
            $module::Entity::insert_many(
                chunk
                    .iter()
                    .cloned()
                    .map(IntoActiveModel::into_active_model),
            )
            .on_conflict(on_conflict)
            .exec_without_returning($txn)
            .await?;
            n += chunk.len() as u64;
        }
        let total = $module::Entity::find().count($txn).await?;
        (n, total)
    }};
}

impl Store {
    /// Connects and runs pending migrations. `sqlite::memory:` and `sqlite://file?mode=rwc`
    /// give SQLite; `postgres://…` gives PostgreSQL.
    pub async fn connect(url: &str) -> Result<Self, DbErr> {
        let mut options = ConnectOptions::new(url.to_owned());
        options.sqlx_logging(false);
        if url.starts_with("sqlite") {
            // One writer at a time is SQLite's model; a single connection also keeps an
            // in-memory database alive and shared.
            options.max_connections(1);
        }
        let db = Database::connect(options).await?;
        Migrator::up(&db, None).await?;
        Ok(Self { db })
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.db.ping().await
    }

    /// Upserts a batch in one transaction; returns (records written, records of that object).
    pub async fn ingest(&self, batch: &IngestBatch) -> Result<(u64, u64), DbErr> {
        let txn = self.db.begin().await?;
        let counts = match batch {
            IngestBatch::Account(records) => {
                let models: Vec<account::Model> = records
                    .iter()
                    .map(|r| account::Model {
                        id: r.id.to_string(),
                        name: r.name.clone(),
                        billing_country: r.billing_country.clone(),
                        industry: r.industry.clone(),
                        created_date: r.created_date,
                        last_modified_date: r.last_modified_date,
                    })
                    .collect();
                upsert!(&txn, account, models)
            }
            IngestBatch::Contact(records) => {
                let models: Vec<contact::Model> = records
                    .iter()
                    .map(|r| contact::Model {
                        id: r.id.to_string(),
                        account_id: r.account_id.as_ref().map(ToString::to_string),
                        first_name: r.first_name.clone(),
                        last_name: r.last_name.clone(),
                        email: r.email.clone(),
                        last_modified_date: r.last_modified_date,
                    })
                    .collect();
                upsert!(&txn, contact, models)
            }
            IngestBatch::Product2(records) => {
                let models: Vec<product::Model> = records
                    .iter()
                    .map(|r| product::Model {
                        id: r.id.to_string(),
                        name: r.name.clone(),
                        product_code: r.product_code.clone(),
                        last_modified_date: r.last_modified_date,
                    })
                    .collect();
                upsert!(&txn, product, models)
            }
            IngestBatch::Order(records) => {
                let models: Vec<order::Model> = records
                    .iter()
                    .map(|r| order::Model {
                        id: r.id.to_string(),
                        account_id: r.account_id.to_string(),
                        effective_date: r.effective_date,
                        status: r.status.clone(),
                        order_number: r.order_number.clone(),
                        last_modified_date: r.last_modified_date,
                    })
                    .collect();
                upsert!(&txn, order, models)
            }
            IngestBatch::OrderItem(records) => {
                let models: Vec<order_item::Model> = records
                    .iter()
                    .map(|r| order_item::Model {
                        id: r.id.to_string(),
                        order_id: r.order_id.to_string(),
                        product_id: r.product_id.as_ref().map(ToString::to_string),
                        quantity: r.quantity,
                        unit_price: r.unit_price,
                        last_modified_date: r.last_modified_date,
                    })
                    .collect();
                upsert!(&txn, order_item, models)
            }
            IngestBatch::Case(records) => {
                let models: Vec<case::Model> = records
                    .iter()
                    .map(|r| case::Model {
                        id: r.id.to_string(),
                        account_id: r.account_id.as_ref().map(ToString::to_string),
                        subject: r.subject.clone(),
                        description: r.description.clone(),
                        status: r.status.clone(),
                        created_date: r.created_date,
                        last_modified_date: r.last_modified_date,
                    })
                    .collect();
                upsert!(&txn, case, models)
            }
        };
        txn.commit().await?;
        Ok(counts)
    }

    /// Every order with its amount (sum of its lines), for the given accounts or all.
    pub async fn order_facts(
        &self,
        accounts: Option<&[SalesforceId]>,
    ) -> Result<Vec<OrderFact>, DbErr> {
        let mut orders = order::Entity::find();
        if let Some(ids) = accounts {
            orders =
                orders.filter(order::Column::AccountId.is_in(ids.iter().map(ToString::to_string)));
        }
        let orders = orders.all(&self.db).await?;
        // Sum only the lines of these orders: online scoring asks for a few accounts, and must
        // not aggregate the whole order-line table on every call.
        let mut lines = order_item::Entity::find()
            .select_only()
            .column(order_item::Column::OrderId)
            .column_as(Expr::cust("SUM(quantity * unit_price)"), "amount")
            .group_by(order_item::Column::OrderId);
        if accounts.is_some() {
            lines = lines
                .filter(order_item::Column::OrderId.is_in(orders.iter().map(|o| o.id.clone())));
        }
        let amounts: Vec<(String, Option<f64>)> = lines.into_tuple().all(&self.db).await?;
        let amounts: HashMap<String, f64> = amounts
            .into_iter()
            .map(|(id, a)| (id, a.unwrap_or(0.0)))
            .collect();
        Ok(orders
            .into_iter()
            .filter_map(|o| {
                let account_id = SalesforceId::parse(&o.account_id).ok()?;
                Some(OrderFact {
                    account_id,
                    date: o.effective_date,
                    amount: amounts.get(&o.id).copied().unwrap_or(0.0),
                })
            })
            .collect())
    }

    /// Which of `ids` are accounts in the store.
    pub async fn existing_accounts(
        &self,
        ids: &[SalesforceId],
    ) -> Result<Vec<SalesforceId>, DbErr> {
        let rows = account::Entity::find()
            .filter(account::Column::Id.is_in(ids.iter().map(ToString::to_string)))
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|a| SalesforceId::parse(&a.id).ok())
            .collect())
    }

    /// Account ids in Id order after `after`, at most `limit`.
    pub async fn account_page(
        &self,
        after: Option<&SalesforceId>,
        limit: u64,
    ) -> Result<Vec<SalesforceId>, DbErr> {
        let mut query = account::Entity::find()
            .order_by_asc(account::Column::Id)
            .limit(limit);
        if let Some(after) = after {
            query = query.filter(account::Column::Id.gt(after.to_string()));
        }
        let rows = query.all(&self.db).await?;
        Ok(rows
            .into_iter()
            .filter_map(|a| SalesforceId::parse(&a.id).ok())
            .collect())
    }
}
