//! The producer of a streamed training set.
//!
//! Why streamed: at the seeds' scale a training set has tens of millions of rows; built as one JSON
//! body it would have to fit in the store's and the trainer's memory at once. Here a page of
//! accounts at a time is read set-based, turned into rows and sent down a bounded channel, so the
//! store holds one page and the channel's few lines, whatever the set's size; a slow reader slows
//! the producer down instead of filling memory.
//!
//! Every line sent (header and rows) goes into a SHA-256 whose hex digest ends the stream: the
//! model that trains on the set records it, so "what did this model learn from" has an exact
//! answer.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use actix_web::web::Bytes;
use chrono::NaiveDate;
use sextant_contracts::api::{
    TrainingRow, TrainingSetHeader, TrainingSetLine, TrainingSetRequest, TrainingSetTrailer,
};
use sextant_contracts::{ErrorBody, ErrorCode, SalesforceId};
use sextant_features::aggregates::{FEATURE_NAMES, FEATURE_SET};
use sextant_features::sequence::WEEK_CHANNELS;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::Sender;

use crate::migration::DEFAULT_ORG;
use crate::store::{PAGE, SEQUENCE_WEEKS, Store};

type Tx = Sender<Result<Bytes, std::io::Error>>;

/// Why production stopped early.
enum Stop {
    /// The reader went away: nothing more to do.
    Disconnected,
    /// The database failed: say so in the stream.
    Failed(String),
}

struct Writer {
    tx: Tx,
    hasher: Sha256,
    rows: u64,
}

impl Writer {
    async fn send(&mut self, line: &TrainingSetLine, hash: bool) -> Result<(), Stop> {
        let mut bytes =
            serde_json::to_vec(line).map_err(|e| Stop::Failed(format!("encode: {e}")))?;
        bytes.push(b'\n');
        if hash {
            self.hasher.update(&bytes);
        }
        self.tx
            .send(Ok(Bytes::from(bytes)))
            .await
            .map_err(|_| Stop::Disconnected)
    }
}

/// Produces the whole stream for `req` (already validated) into `tx`.
pub async fn produce(store: Store, req: TrainingSetRequest, tx: Tx) {
    let mut w = Writer {
        tx,
        hasher: Sha256::new(),
        rows: 0,
    };
    match run(&store, &req, &mut w).await {
        Ok(()) => {
            let digest = std::mem::take(&mut w.hasher).finalize();
            let mut fingerprint = String::with_capacity(64);
            for b in digest {
                let _ = write!(fingerprint, "{b:02x}");
            }
            let trailer = TrainingSetLine::Trailer(TrainingSetTrailer {
                rows: w.rows,
                fingerprint,
            });
            let _ = w.send(&trailer, false).await;
        }
        Err(Stop::Disconnected) => {
            tracing::info!("Training-set reader went away; stopped.");
        }
        Err(Stop::Failed(message)) => {
            tracing::error!(%message, "Training set failed mid-stream.");
            let line = TrainingSetLine::Error(ErrorBody {
                code: ErrorCode::Internal,
                message: "the training set failed part-way; discard what was received".into(),
            });
            let _ = w.send(&line, false).await;
        }
    }
}

async fn run(store: &Store, req: &TrainingSetRequest, w: &mut Writer) -> Result<(), Stop> {
    let org = req
        .org_id
        .as_ref()
        .map_or_else(|| DEFAULT_ORG.to_owned(), ToString::to_string);
    let mut cutoffs: Vec<NaiveDate> = req
        .cutoffs
        .iter()
        .copied()
        .chain(req.examples.iter().map(|e| e.cutoff))
        .collect();
    cutoffs.sort();
    cutoffs.dedup();
    let header = TrainingSetLine::Header(TrainingSetHeader {
        feature_set: FEATURE_SET.to_owned(),
        feature_names: FEATURE_NAMES.iter().map(|s| (*s).to_owned()).collect(),
        sequence_channels: if req.include_sequences {
            WEEK_CHANNELS.iter().map(|s| (*s).to_owned()).collect()
        } else {
            Vec::new()
        },
        sequence_weeks: if req.include_sequences {
            u32::try_from(SEQUENCE_WEEKS).unwrap_or(0)
        } else {
            0
        },
        horizon_days: req.horizon_days,
        cutoffs: cutoffs.clone(),
    });
    w.send(&header, true).await?;
    let failed = |e: sea_orm::DbErr| Stop::Failed(e.to_string());

    if req.examples.is_empty() {
        // Every account with an order, a page at a time, each page at every cut-off.
        let mut after: Option<String> = None;
        loop {
            let page = store
                .accounts_with_orders(&org, after.as_deref(), PAGE)
                .await
                .map_err(failed)?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            for cutoff in &req.cutoffs {
                emit(store, &org, &page, *cutoff, req, w).await?;
            }
            after = Some(last);
        }
    } else {
        // Explicit pairs, grouped by cut-off, a page of accounts at a time.
        let mut by_cutoff: BTreeMap<NaiveDate, Vec<String>> = BTreeMap::new();
        for e in &req.examples {
            by_cutoff
                .entry(e.cutoff)
                .or_default()
                .push(e.account_id.to_string());
        }
        for (cutoff, mut accounts) in by_cutoff {
            accounts.sort();
            accounts.dedup();
            for page in accounts.chunks(PAGE) {
                emit(store, &org, page, cutoff, req, w).await?;
            }
        }
    }
    Ok(())
}

/// Rows of one page of accounts at one cut-off: accounts that existed and had a purchase before
/// the cut-off, as known then.
async fn emit(
    store: &Store,
    org: &str,
    page: &[String],
    cutoff: NaiveDate,
    req: &TrainingSetRequest,
    w: &mut Writer,
) -> Result<(), Stop> {
    let failed = |e: sea_orm::DbErr| Stop::Failed(e.to_string());
    let known_before = crate::store::day_number(cutoff) * 86_400_000_000;
    let computed = store
        .compute(
            store.connection(),
            org,
            page,
            cutoff,
            Some(known_before),
            req.include_sequences,
        )
        .await
        .map_err(failed)?;
    let with_history: Vec<String> = computed
        .iter()
        .filter(|c| c.features.is_some())
        .map(|c| c.account_id.clone())
        .collect();
    if with_history.is_empty() {
        return Ok(());
    }
    let active = store
        .purchased_within(org, &with_history, cutoff, req.horizon_days)
        .await
        .map_err(failed)?;
    for c in computed {
        let Some(features) = c.features else {
            continue;
        };
        let Ok(account_id) = SalesforceId::parse(&c.account_id) else {
            return Err(Stop::Failed(format!(
                "stored account id {} is not a Salesforce id",
                c.account_id
            )));
        };
        let churned = !active.contains(&c.account_id);
        let row = TrainingSetLine::Row(TrainingRow {
            account_id,
            cutoff,
            features,
            sequence: c.sequence,
            attributes: c.attributes,
            churned,
        });
        w.send(&row, true).await?;
        w.rows += 1;
    }
    Ok(())
}
