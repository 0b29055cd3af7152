//! Token strings: `jobd_<id>_<secret>`, 96 random bits of id and 256 of
//! secret. The id finds the stored token; the secret is checked against its
//! stored SHA-256 in constant time. The secret itself is shown once, at
//! creation, and kept nowhere.

use std::fmt::Write;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The start of every token string.
const PREFIX: &str = "jobd_";

/// A freshly made token: its id, the string to hand out once, and the
/// secret's hash to store.
pub(crate) struct Minted {
    pub(crate) id: String,
    pub(crate) token: String,
    pub(crate) secret_hash: String,
}

/// Makes a token from the operating system's random source.
pub(crate) fn mint() -> Result<Minted, getrandom::Error> {
    let mut id = [0u8; 12];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut id)?;
    getrandom::fill(&mut secret)?;
    let (id, secret) = (hex(&id), hex(&secret));
    Ok(Minted {
        token: format!("{PREFIX}{id}_{secret}"),
        secret_hash: hex(&sha256(&secret)),
        id,
    })
}

/// A presented token split into id and secret; `None` if it cannot be
/// one of ours (it may still be the bootstrap admin token).
pub(crate) fn split(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex_of = |s: &str, len| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex_of(id, 24) && hex_of(secret, 64)).then_some((id, secret))
}

/// Whether `secret` hashes to `stored_hash`, in constant time.
pub(crate) fn secret_matches(secret: &str, stored_hash: &[u8; 32]) -> bool {
    sha256(secret).ct_eq(stored_hash).into()
}

/// The 32 bytes of a hex SHA-256 as stored; `None` if it is not one.
pub(crate) fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let mut hash = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (byte, pair) in hash.iter_mut().zip(text.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(hash)
}

/// SHA-256 of `text`.
pub(crate) fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_splits_and_matches_only_its_own_hash() {
        let a = mint().unwrap();
        let b = mint().unwrap();
        assert_ne!(a.token, b.token);
        let (id, secret) = split(&a.token).unwrap();
        assert_eq!(id, a.id);
        assert!(secret_matches(secret, &parse_hash(&a.secret_hash).unwrap()));
        assert!(!secret_matches(
            secret,
            &parse_hash(&b.secret_hash).unwrap()
        ));
        assert_eq!(parse_hash("xyz"), None);
        assert_eq!(split("jobd_short_secret"), None);
        assert_eq!(split("Bearer x"), None);
    }
}
