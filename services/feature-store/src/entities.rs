//! Tables of the feature store: the CRM records as last synced, keyed by Salesforce Id.

macro_rules! no_relations {
    () => {
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}
        impl ActiveModelBehavior for ActiveModel {}
    };
}

pub mod account {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "sf_account")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub billing_country: Option<String>,
        pub industry: Option<String>,
        pub created_date: DateTimeUtc,
        pub last_modified_date: DateTimeUtc,
    }
    no_relations!();
}

pub mod contact {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "sf_contact")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        #[sea_orm(indexed)]
        pub account_id: Option<String>,
        pub first_name: Option<String>,
        pub last_name: String,
        pub email: Option<String>,
        pub last_modified_date: DateTimeUtc,
    }
    no_relations!();
}

pub mod product {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "sf_product")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub product_code: Option<String>,
        pub last_modified_date: DateTimeUtc,
    }
    no_relations!();
}

pub mod order {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "sf_order")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        #[sea_orm(indexed)]
        pub account_id: String,
        #[sea_orm(indexed)]
        pub effective_date: Date,
        pub status: String,
        pub order_number: Option<String>,
        pub last_modified_date: DateTimeUtc,
    }
    no_relations!();
}

pub mod order_item {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "sf_order_item")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        #[sea_orm(indexed)]
        pub order_id: String,
        pub product_id: Option<String>,
        pub quantity: f64,
        pub unit_price: f64,
        pub last_modified_date: DateTimeUtc,
    }
    no_relations!();
}

pub mod case {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "sf_case")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        #[sea_orm(indexed)]
        pub account_id: Option<String>,
        pub subject: Option<String>,
        #[sea_orm(column_type = "Text", nullable)]
        pub description: Option<String>,
        pub status: Option<String>,
        pub created_date: DateTimeUtc,
        pub last_modified_date: DateTimeUtc,
    }
    no_relations!();
}
