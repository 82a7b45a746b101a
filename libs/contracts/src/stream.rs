//! Reading the NDJSON training-set stream (`POST /v1/training-sets`): a header, rows, a trailer.
//!
//! A stream that ends without its trailer, has rows before its header, or carries an error line is
//! refused: a truncated training set must never be trained on silently.

/// Incremental parser of the NDJSON training-set stream.
#[derive(Debug, Default)]
pub struct TrainingSetParser {
    pending: Vec<u8>,
    header: Option<crate::api::TrainingSetHeader>,
    rows: Vec<crate::api::TrainingRow>,
    trailer: Option<crate::api::TrainingSetTrailer>,
}

impl TrainingSetParser {
    /// Feeds bytes; complete lines are parsed.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), String> {
        use crate::api::TrainingSetLine;
        self.pending.extend_from_slice(bytes);
        while let Some(pos) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=pos).collect();
            let line = &line[..line.len() - 1];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if self.trailer.is_some() {
                return Err("training set: data after the trailer".into());
            }
            let parsed: TrainingSetLine =
                serde_json::from_slice(line).map_err(|e| format!("training set: bad line: {e}"))?;
            match parsed {
                TrainingSetLine::Header(h) if self.header.is_none() => self.header = Some(h),
                TrainingSetLine::Header(_) => return Err("training set: second header".into()),
                TrainingSetLine::Row(_) if self.header.is_none() => {
                    return Err("training set: row before the header".into());
                }
                TrainingSetLine::Row(r) => self.rows.push(r),
                TrainingSetLine::Trailer(t) => self.trailer = Some(t),
                TrainingSetLine::Error(e) => {
                    return Err(format!(
                        "feature store failed mid-stream: {} {}",
                        e.code.as_str(),
                        e.message
                    ));
                }
            }
        }
        Ok(())
    }

    /// The whole set, once the trailer has arrived and its row count matches.
    pub fn finish(self) -> Result<crate::api::TrainingSet, String> {
        let header = self.header.ok_or("training set: no header")?;
        let trailer = self
            .trailer
            .ok_or("training set: the stream ended without its trailer (truncated)")?;
        if trailer.rows != self.rows.len() as u64 {
            return Err(format!(
                "training set: trailer says {} rows, {} arrived",
                trailer.rows,
                self.rows.len()
            ));
        }
        Ok(crate::api::TrainingSet {
            header,
            rows: self.rows,
            fingerprint: trailer.fingerprint,
        })
    }
}
