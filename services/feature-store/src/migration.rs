//! Schema migrations. Each migration is frozen once released; new columns come as new
//! migrations. Tables (and their indexes) are created from the entity definitions as they were
//! when the migration was written.

use sea_orm::Schema;
use sea_orm_migration::prelude::*;

use crate::entities::{account, case, contact, order, order_item, product};

/// The feature store's migrations, in order.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(CreateCrmTables)]
    }
}

#[derive(Debug, DeriveMigrationName)]
struct CreateCrmTables;

#[async_trait::async_trait]
impl MigrationTrait for CreateCrmTables {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let schema = Schema::new(db.get_database_backend());
        macro_rules! create {
            ($($e:path),*) => {$(
                manager.create_table(schema.create_table_from_entity($e).if_not_exists().to_owned()).await?;
                for mut index in schema.create_index_from_entity($e) {
                    manager.create_index(index.if_not_exists().to_owned()).await?;
                }
            )*};
        }
        create!(
            account::Entity,
            contact::Entity,
            product::Entity,
            order::Entity,
            order_item::Entity,
            case::Entity
        );
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            "sf_case",
            "sf_order_item",
            "sf_order",
            "sf_product",
            "sf_contact",
            "sf_account",
        ] {
            manager
                .drop_table(Table::drop().table(Alias::new(t)).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
