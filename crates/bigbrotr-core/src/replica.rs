//! Replicas of one daemon sharing its work: the `replica:` settings and [`WorkLeases`], one
//! cycle's leases over units of work (bigbrotr-db's `lease` module) with the heartbeat that keeps
//! them and the signal that one was lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bigbrotr_db::Brotr;
use bigbrotr_db::lease::{LeaseHolder, MAX_HOLDER_LEN, ServerTime};
use bigbrotr_models::service_state::ServiceName;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::config::ConfigError;

/// `replica:` — who this process is among the replicas of its service, and how long its claims
/// hold without a renewal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReplicaConfig {
    /// This replica's id, unique among the service's replicas (1–200 bytes). Default: the
    /// environment variable `BIGBROTR_REPLICA_ID`, else the host name and the process id.
    pub id: Option<String>,
    /// Seconds a claim holds without a renewal (1–3600, default 60): a replica that dies leaves its work to
    /// the others after at most this long. Renewed every third of it.
    pub lease_ttl: f64,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        Self {
            id: None,
            lease_ttl: 60.0,
        }
    }
}

impl ReplicaConfig {
    /// Checks both keys.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.lease_ttl.is_finite() && (1.0..=3600.0).contains(&self.lease_ttl)) {
            return Err(ConfigError(format!(
                "replica.lease_ttl = {} is out of range (1..=3600)",
                self.lease_ttl
            )));
        }
        if let Some(id) = &self.id
            && (id.is_empty() || id.len() > MAX_HOLDER_LEN)
        {
            return Err(ConfigError(format!(
                "replica.id must be 1-{MAX_HOLDER_LEN} bytes, got {} bytes",
                id.len()
            )));
        }
        Ok(())
    }

    /// This replica's id: `id`, else `BIGBROTR_REPLICA_ID`, else `<host name>-<pid>`.
    pub fn resolve_id(&self) -> String {
        if let Some(id) = &self.id {
            return id.clone();
        }
        if let Ok(id) = std::env::var("BIGBROTR_REPLICA_ID")
            && !id.is_empty()
            && id.len() <= MAX_HOLDER_LEN
        {
            return id;
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        let mut id = format!("{host}-{}", std::process::id());
        id.truncate(MAX_HOLDER_LEN);
        id
    }

    /// The time to live of a claim.
    pub fn ttl(&self) -> Duration {
        Duration::from_secs_f64(self.lease_ttl)
    }
}

/// The leases of one cycle: claims keys, keeps them renewed from a background task, tells the
/// work on a key to stop when its lease was lost, and gives back what is unfinished at the end.
#[derive(Debug)]
pub struct WorkLeases {
    brotr: Brotr,
    holder: LeaseHolder,
    ttl: Duration,
    cycle_start: ServerTime,
    held: Arc<Mutex<HashMap<String, CancellationToken>>>,
    heartbeat: CancellationToken,
}

impl WorkLeases {
    /// Starts a cycle for `service` as replica `config.resolve_id()`: its start is taken from the
    /// database server's clock, and the heartbeat starts renewing whatever gets claimed.
    pub async fn begin(
        brotr: &Brotr,
        service: ServiceName,
        config: &ReplicaConfig,
    ) -> anyhow::Result<Self> {
        let holder = LeaseHolder::new(service, config.resolve_id())?;
        let cycle_start = brotr.lease_clock().await?;
        let leases = Self {
            brotr: brotr.clone(),
            holder,
            ttl: config.ttl(),
            cycle_start,
            held: Arc::new(Mutex::new(HashMap::new())),
            heartbeat: CancellationToken::new(),
        };
        tokio::spawn(heartbeat(
            brotr.clone(),
            leases.holder.clone(),
            leases.ttl,
            leases.held.clone(),
            leases.heartbeat.clone(),
        ));
        Ok(leases)
    }

    /// This replica's id.
    pub fn holder(&self) -> &LeaseHolder {
        &self.holder
    }

    /// Claims at most `limit` of `keys`, in their order; returns each claimed key with a token
    /// cancelled if its lease is lost (the work on it must then stop without recording it).
    pub async fn claim(
        &self,
        keys: &[String],
        limit: usize,
    ) -> anyhow::Result<Vec<(String, CancellationToken)>> {
        let claimed = self
            .brotr
            .lease_acquire(&self.holder, keys, self.ttl, limit, self.cycle_start)
            .await?;
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(claimed
            .into_iter()
            .map(|key| {
                let token = held.entry(key.clone()).or_default().clone();
                (key, token)
            })
            .collect())
    }

    /// Marks `key` finished: no replica does it again in this cycle.
    pub async fn finish(&self, key: &str) -> anyhow::Result<()> {
        self.finish_all(&[key.to_owned()]).await
    }

    /// Marks every one of `keys` finished, in one statement.
    pub async fn finish_all(&self, keys: &[String]) -> anyhow::Result<()> {
        for key in keys {
            self.forget(key);
        }
        self.brotr.lease_finish(&self.holder, keys).await?;
        Ok(())
    }

    /// The keys among `keys` that another replica is working on now (held, unfinished,
    /// unexpired): to wait for, since they may yet be given back or expire.
    pub async fn pending(&self, keys: &[String]) -> anyhow::Result<Vec<String>> {
        Ok(self.brotr.lease_pending(&self.holder, keys).await?)
    }

    /// Gives `key` back unfinished: any replica may claim it at once.
    pub async fn release(&self, key: &str) -> anyhow::Result<()> {
        self.forget(key);
        self.brotr
            .lease_release(&self.holder, &[key.to_owned()])
            .await?;
        Ok(())
    }

    /// How many keys this replica holds now.
    pub fn held(&self) -> usize {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Ends the cycle: stops the heartbeat and gives back every key still held.
    pub async fn end(self) -> anyhow::Result<()> {
        self.heartbeat.cancel();
        let keys: Vec<String> = self
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .map(|(key, _)| key)
            .collect();
        self.brotr.lease_release(&self.holder, &keys).await?;
        Ok(())
    }

    fn forget(&self, key: &str) {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

impl Drop for WorkLeases {
    fn drop(&mut self) {
        // Without `end` (an error path): the heartbeat stops and the leases expire on their own.
        self.heartbeat.cancel();
    }
}

/// Renews every held key each third of `ttl`; a key the database no longer gives back was taken
/// over: its token is cancelled and it is forgotten. A failed renewal is retried at the next
/// beat (the leases hold for two more).
async fn heartbeat(
    brotr: Brotr,
    holder: LeaseHolder,
    ttl: Duration,
    held: Arc<Mutex<HashMap<String, CancellationToken>>>,
    stop: CancellationToken,
) {
    let beat = ttl / 3;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(beat) => {}
        }
        let keys: Vec<String> = held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        if keys.is_empty() {
            continue;
        }
        match brotr.lease_renew(&holder, &keys, ttl).await {
            Ok(renewed) => {
                let mut held = held.lock().unwrap_or_else(PoisonError::into_inner);
                for key in keys.iter().filter(|k| !renewed.contains(k)) {
                    if let Some(token) = held.remove(key) {
                        tracing::warn!(key = key.as_str(), "lease_lost");
                        token.cancel();
                    }
                }
            }
            Err(error) => tracing::warn!(error = %error, "lease_renew_failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ReplicaConfig;

    #[test]
    fn the_ttl_and_the_id_are_bounded() {
        assert!(ReplicaConfig::default().validate().is_ok());
        for ttl in [0.5, 3600.5, f64::NAN] {
            let config = ReplicaConfig {
                lease_ttl: ttl,
                ..ReplicaConfig::default()
            };
            assert!(config.validate().is_err(), "{ttl}");
        }
        for id in [String::new(), "x".repeat(201)] {
            let config = ReplicaConfig {
                id: Some(id.clone()),
                ..ReplicaConfig::default()
            };
            assert!(config.validate().is_err(), "{} bytes", id.len());
        }
    }

    #[test]
    fn the_id_defaults_to_the_host_and_the_process() {
        let given = ReplicaConfig {
            id: Some("replica-7".into()),
            ..ReplicaConfig::default()
        };
        assert_eq!(given.resolve_id(), "replica-7");
        // Without an id (and unless BIGBROTR_REPLICA_ID is set): <host>-<pid>.
        if std::env::var_os("BIGBROTR_REPLICA_ID").is_none() {
            let id = ReplicaConfig::default().resolve_id();
            assert!(id.ends_with(&format!("-{}", std::process::id())), "{id}");
        }
    }
}
