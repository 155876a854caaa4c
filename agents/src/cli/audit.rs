//! `muster audit RUN`: a run's audit trail, one line per durable transition, oldest first.

use super::commands::{connect_cluster, print_json};
use super::settings::Settings;
use super::{Cluster, exit};
use muster_bus::Events;
use muster_bus::subjects::Subjects;
use muster_schemas::Payload;
use muster_schemas::message::AuditRecord;
use uuid::Uuid;

/// Most records read for one run.
const LIMIT: usize = 100_000;

/// Prints the trail as text (`revision  time  cause` then one indented line per change) or as a
/// JSON array of records.
pub async fn audit(settings: &Settings, run_id: &str, json: bool, cluster: Cluster) -> u8 {
    let Ok(id) = run_id.parse::<Uuid>() else {
        eprintln!("error: `{run_id}` is not a run id (a UUID, as printed by `muster trigger`)");
        return exit::INVALID;
    };
    let bus = match connect_cluster(settings, cluster, "muster-cli").await {
        Ok(bus) => bus,
        Err(code) => return code,
    };
    let subject = Subjects::new(settings.prefix.clone()).audit(&id.to_string());
    let stored = match bus.history(&subject, LIMIT).await {
        Ok(stored) => stored,
        Err(err) => {
            eprintln!("error: cannot read the audit trail of {id}: {err}");
            return exit::UNAVAILABLE;
        }
    };
    let mut records = Vec::new();
    for (_, bytes) in stored {
        match crate::wire::decode(&bytes).map(|e| e.payload) {
            Ok(Payload::AuditRecord(record)) => records.push(record),
            Ok(other) => eprintln!("warning: skipped a {} message on the audit subject", other.kind()),
            Err(err) => eprintln!("warning: skipped an undecodable audit record: {err}"),
        }
    }
    if records.is_empty() {
        eprintln!("error: no audit trail for run {id} (wrong id, or another --prefix?)");
        return exit::INVALID;
    }
    if json {
        print_json(&records);
    } else {
        records.iter().for_each(print_record);
    }
    exit::OK
}

fn print_record(record: &AuditRecord) {
    println!("#{:<6} {}  {:<11} {}", record.revision, record.at, record.state.as_str(), record.cause);
    for change in &record.changes {
        println!("        {change}");
    }
}
