//! Bulk API 2.0 query jobs: for objects too large to page through REST 2,000 rows at a time.
//!
//! A job is created (`POST /jobs/query`), polled with exponential backoff until `JobComplete`
//! (`Failed` and `Aborted` end it with the job's `errorMessage`; a job still running at the
//! configured timeout is aborted), and its CSV results are read a page at a time by
//! `Sforce-Locator` until the header holds the **literal string `null`** (§10: clients that read
//! only the first page, or typed the locator as a number, lost rows). Every page starts with the
//! header row; NUL bytes are stripped (they occur in real exports); empty fields become `null`.
//! The rows received are checked against the job's `numberRecordsProcessed`.
//!
//! Every call goes through [`SalesforceClient::send`], so retries, re-authentication and the API
//! budget apply as for REST.

use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::SalesforceError;
use crate::client::{ApiRequest, SalesforceClient};

/// How query jobs are run.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkOptions {
    /// First wait between two polls; doubled up to `poll_max`.
    pub poll_initial: Duration,
    pub poll_max: Duration,
    /// A job not complete after this long is aborted and reported.
    pub timeout: Duration,
    /// `maxRecords` per result page (memory holds one page).
    pub max_records: u32,
}

impl Default for BulkOptions {
    fn default() -> Self {
        Self {
            poll_initial: Duration::from_millis(500),
            poll_max: Duration::from_secs(10),
            timeout: Duration::from_secs(3600),
            max_records: 50_000,
        }
    }
}

/// A query job's `JobInfo` (the fields we use).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobInfo {
    pub id: String,
    pub state: String,
    #[serde(default)]
    pub object: Option<String>,
    #[serde(default)]
    pub number_records_processed: Option<u64>,
    #[serde(default)]
    pub error_message: Option<String>,
}

/// A complete query job whose results can be read.
#[derive(Debug, Clone)]
pub struct BulkQueryJob {
    pub info: JobInfo,
    /// Polls made until it completed.
    pub polls: u32,
}

impl SalesforceClient {
    fn jobs_path(&self) -> String {
        format!("/services/data/v{}/jobs/query", self.api_version())
    }

    /// Creates a query job (`queryAll` when `include_deleted`) and waits until it is complete.
    pub async fn bulk_query(
        &self,
        soql: &str,
        include_deleted: bool,
        options: &BulkOptions,
    ) -> Result<BulkQueryJob, SalesforceError> {
        let body = json!({
            "operation": if include_deleted { "queryAll" } else { "query" },
            "query": soql,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        });
        let created: JobInfo = self
            .send(&ApiRequest::json(Method::POST, self.jobs_path(), &body))
            .await?
            .json()?;
        tracing::info!(job = %created.id, "Bulk API 2.0 query job created.");
        self.wait_for_job(created, options).await
    }

    async fn wait_for_job(
        &self,
        mut info: JobInfo,
        options: &BulkOptions,
    ) -> Result<BulkQueryJob, SalesforceError> {
        let started = tokio::time::Instant::now();
        let mut wait = options.poll_initial;
        let mut polls = 0;
        loop {
            match info.state.as_str() {
                "JobComplete" => return Ok(BulkQueryJob { info, polls }),
                "Failed" | "Aborted" => {
                    return Err(SalesforceError::BulkJob {
                        id: info.id,
                        state: info.state,
                        message: info.error_message.unwrap_or_default(),
                    });
                }
                _ => {}
            }
            if started.elapsed() >= options.timeout {
                // Do not leave it running on the org's bulk allowance.
                let abort = ApiRequest::json(
                    Method::PATCH,
                    format!("{}/{}", self.jobs_path(), info.id),
                    &json!({"state": "Aborted"}),
                );
                if let Err(e) = self.send(&abort).await {
                    tracing::warn!(job = %info.id, error = %e, "Could not abort the bulk job.");
                }
                return Err(SalesforceError::BulkJob {
                    id: info.id,
                    state: info.state,
                    message: format!(
                        "not complete after {} s; aborted",
                        options.timeout.as_secs()
                    ),
                });
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(options.poll_max);
            polls += 1;
            info = self
                .send(&ApiRequest::get(format!(
                    "{}/{}",
                    self.jobs_path(),
                    info.id
                )))
                .await?
                .json()?;
        }
    }
}

impl BulkQueryJob {
    /// Reads the results a page at a time.
    pub fn results<'a>(
        &self,
        client: &'a SalesforceClient,
        options: &BulkOptions,
    ) -> BulkResults<'a> {
        BulkResults {
            client,
            path: format!("{}/{}/results", client.jobs_path(), self.info.id),
            max_records: options.max_records,
            locator: None,
            done: false,
            received: 0,
            pages: 0,
            expected: self.info.number_records_processed,
        }
    }
}

/// The CSV result pages of a complete job.
#[derive(Debug)]
pub struct BulkResults<'a> {
    client: &'a SalesforceClient,
    path: String,
    max_records: u32,
    locator: Option<String>,
    done: bool,
    received: u64,
    pages: u64,
    expected: Option<u64>,
}

impl BulkResults<'_> {
    /// The next page's rows, or `None` after the page whose `Sforce-Locator` was `null`.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Map<String, Value>>>, SalesforceError> {
        if self.done {
            return Ok(None);
        }
        let mut path = format!("{}?maxRecords={}", self.path, self.max_records);
        if let Some(l) = &self.locator {
            // Opaque: passed back exactly, encoded as a query value.
            let encoded: String = url::form_urlencoded::byte_serialize(l.as_bytes()).collect();
            path.push_str(&format!("&locator={encoded}"));
        }
        let resp = self
            .client
            .send(&ApiRequest::get(path).header("Accept", "text/csv"))
            .await?;
        let locator = resp.header("Sforce-Locator").map(str::to_owned);
        let rows = parse_csv(&resp.body)?;
        if let Some(n) = resp
            .header("Sforce-NumberOfRecords")
            .and_then(|n| n.trim().parse::<u64>().ok())
            && n != rows.len() as u64
        {
            return Err(SalesforceError::Unexpected {
                status: resp.status,
                detail: format!(
                    "Sforce-NumberOfRecords says {n} but the page has {} rows",
                    rows.len()
                ),
            });
        }
        self.pages += 1;
        self.received += rows.len() as u64;
        match locator.as_deref().map(str::trim) {
            // The literal string "null" (or no header at all) ends the results.
            None | Some("null") | Some("") => {
                self.done = true;
                if let Some(expected) = self.expected
                    && expected != self.received
                {
                    return Err(SalesforceError::RowCountMismatch {
                        total_size: expected,
                        received: self.received,
                    });
                }
            }
            Some(l) => self.locator = Some(l.to_owned()),
        }
        Ok(Some(rows))
    }

    /// Rows received so far.
    pub fn received(&self) -> u64 {
        self.received
    }
    /// Pages received so far.
    pub fn pages(&self) -> u64 {
        self.pages
    }
}

/// A CSV page (header row first) as records; empty fields are `null`, NUL bytes are dropped.
pub fn parse_csv(body: &[u8]) -> Result<Vec<Map<String, Value>>, SalesforceError> {
    let cleaned: Vec<u8>;
    let body = if body.contains(&0) {
        cleaned = body.iter().copied().filter(|&b| b != 0).collect();
        &cleaned[..]
    } else {
        body
    };
    let bad = |e: csv::Error| SalesforceError::Unexpected {
        status: 200,
        detail: format!("bulk result is not CSV: {e}"),
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(body);
    let header: Vec<String> = reader
        .headers()
        .map_err(bad)?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut out = Vec::new();
    for row in reader.records() {
        let row = row.map_err(bad)?;
        let rec: Map<String, Value> = header
            .iter()
            .zip(row.iter())
            .map(|(k, v)| {
                let v = if v.is_empty() {
                    Value::Null
                } else {
                    Value::from(v)
                };
                (k.clone(), v)
            })
            .collect();
        out.push(rec);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_pages_keep_quotes_commas_and_newlines_and_map_empty_to_null() {
        let body = b"\"Id\",\"Name\",\"Quantity\"\n\"001A\",\"Smith, \"\"J\"\"\nline2\",\"3.5\"\n\"001B\",\"\",\"\"\n";
        let rows = parse_csv(body).expect("parses");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["Name"], "Smith, \"J\"\nline2");
        assert_eq!(rows[0]["Quantity"], "3.5");
        assert_eq!(rows[1]["Name"], Value::Null);
        let with_nul = b"\"Id\",\"Name\"\n\"001A\",\"a\0b\"\n";
        assert_eq!(parse_csv(with_nul).expect("parses")[0]["Name"], "ab");
        assert!(parse_csv(b"\"Id\"\n").expect("header only").is_empty());
    }
}
