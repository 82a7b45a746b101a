//! A local Salesforce org simulator that speaks Salesforce's real wire formats.
//!
//! Salesforce cannot be reached from development machines or CI, so Sextant's connector is
//! exercised against this server instead. It is faithful where our client depends on it:
//!
//! - `POST /services/oauth2/token` with the JWT bearer grant: the RS256 assertion is verified
//!   against the connected app's X.509 certificate; `iss`, `sub`, `aud` and `exp` are checked;
//!   success and error bodies are Salesforce's (no `expires_in`; `{error, error_description}`).
//! - `GET /services/data/vNN.N/query?q=` (and `queryAll`): a SOQL subset (field list, `FROM`,
//!   `WHERE … AND …`, `ORDER BY`, `LIMIT`) with `attributes`, explicit nulls, `+0000`
//!   datetimes, `nextRecordsUrl` paging (honouring `Sforce-Query-Options: batchSize`),
//!   `Sforce-Limit-Info`, and the REST error array (`MALFORMED_QUERY`, `INVALID_FIELD` with the
//!   caret diagram, `INVALID_TYPE`, `INVALID_SESSION_ID`, `INVALID_QUERY_LOCATOR`).
//! - `GET /services/data/vNN.N/sobjects/{Object}/describe`: fields with their describe `type`,
//!   `referenceTo` and `custom`; `404 NOT_FOUND` for an unknown object.
//!
//! Besides the standard objects it holds a custom object, `Web_Visit__c` (`__c` fields of
//! reference, datetime, number and picklist types; a visit the day before each order), served
//! by describe, SOQL, `queryAll` and Bulk API 2.0 like any other, and a Data Cloud object,
//! `ssot__Engagement__dlm` (an email open a week after each case), served only by Query API v2.
//!
//! It is loaded from a real data sample shipped in `data/` (UCI Online Retail, CC BY 4.0; VADER
//! review snippets, MIT): see `data/ATTRIBUTION.md`.
//!
//! # Layout
//! - [`data`]: the org's objects and records, built from the sample.
//! - [`soql`]: the SOQL subset: parser and evaluator.
//! - [`server`]: the HTTP endpoints.
//! - [`bulk`]: Bulk API 2.0 query jobs and sObject Collections upsert.
//! - [`ingest`]: Bulk API 2.0 ingest jobs (upsert and update from CSV uploads).
//! - [`datacloud`]: the a360 token exchange and Query API v2.
//! - [`faults`]: injected failures (5xx, 429, slow answers, broken connections, lock errors).
//! - [`credentials`]: a connected-app key pair and self-signed certificate for local use.

pub mod bulk;
pub mod credentials;
pub mod data;
pub mod datacloud;
pub mod faults;
pub mod ingest;
pub mod server;
pub mod soql;

pub use server::{OrgSim, OrgSimConfig, RunningOrgSim};
