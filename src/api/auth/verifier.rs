//! Turns a presented bearer token into a [`Grant`]: the bootstrap admin
//! token, or a stored token found by id, its secret checked, live at the
//! store's clock. Stored tokens are cached per process for at most
//! [`CACHE_FOR`], so a revocation on any node is refused everywhere within
//! that time without a store read per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

use super::secret::{parse_hash, secret_matches, sha256, split};
use crate::api::error::ApiError;
use crate::config::AdminToken;
use crate::model::{ApiToken, JobId, Role};
use crate::store::Store;

/// What a verified token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grant {
    /// The token's id (never its secret).
    pub(crate) token_id: String,
    /// The user it acts as.
    pub(crate) user_id: String,
    /// Its role.
    pub(crate) role: Role,
    /// The one job it is limited to, if any.
    pub(crate) job_id: Option<JobId>,
}

/// How long a stored token read is trusted before it is read again.
pub(crate) const CACHE_FOR: Duration = Duration::from_millis(500);

/// Entries past which the cache drops what has expired.
const CACHE_PRUNE_AT: usize = 10_000;

/// The id the bootstrap admin token goes by (in the audit log, say).
pub(crate) const ADMIN_TOKEN_ID: &str = "bootstrap-admin";

/// Checks tokens for one process. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Verifier {
    store: Arc<dyn Store>,
    admin: Option<AdminToken>,
    cache: Arc<Mutex<Cache>>,
}

/// Stored tokens by id, with when each was read.
type Cache = HashMap<String, (Arc<Known>, Instant)>;

/// A stored token and its secret's hash as bytes, decoded once.
struct Known {
    token: ApiToken,
    hash: [u8; 32],
}

impl Verifier {
    pub(crate) fn new(store: Arc<dyn Store>, admin: Option<AdminToken>) -> Verifier {
        Verifier {
            store,
            admin,
            cache: Arc::default(),
        }
    }

    /// The grant of `token`, or 401 for anything that is not a live token
    /// (one answer for every reason); a store failure is a 503.
    pub(crate) async fn verify(&self, token: &str) -> Result<Grant, ApiError> {
        if let Some(admin) = &self.admin
            && bool::from(sha256(token).ct_eq(&admin.0))
        {
            return Ok(Grant {
                token_id: ADMIN_TOKEN_ID.to_owned(),
                user_id: "admin".to_owned(),
                role: Role::Admin,
                job_id: None,
            });
        }
        let (id, secret) = split(token).ok_or(ApiError::Unauthorized)?;
        let known = match self.cached(id) {
            Some(known) => known,
            None => {
                let stored = self.store.token(id).await?.ok_or(ApiError::Unauthorized)?;
                self.remember(stored)
            }
        };
        let Known { token, hash } = known.as_ref();
        if !secret_matches(secret, hash) || !token.live_at(self.store.clock().now()) {
            return Err(ApiError::Unauthorized);
        }
        Ok(Grant {
            token_id: token.id.clone(),
            user_id: token.user_id.clone(),
            role: token.role,
            job_id: token.job_id,
        })
    }

    /// Forgets `id` at once (this process revoked it).
    pub(crate) fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    fn cached(&self, id: &str) -> Option<Arc<Known>> {
        let cache = self.lock();
        let (known, at) = cache.get(id)?;
        (at.elapsed() < CACHE_FOR).then(|| known.clone())
    }

    /// Caches `token` (a stored hash that is not one matches no secret).
    fn remember(&self, token: ApiToken) -> Arc<Known> {
        let hash = parse_hash(&token.secret_hash).unwrap_or([0; 32]);
        let known = Arc::new(Known { token, hash });
        let mut cache = self.lock();
        if cache.len() >= CACHE_PRUNE_AT {
            cache.retain(|_, (_, at)| at.elapsed() < CACHE_FOR);
        }
        cache.insert(known.token.id.clone(), (known.clone(), Instant::now()));
        known
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        // Only map operations run under the lock: never poisoned midway.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
