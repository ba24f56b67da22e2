//! Users and devices as the rest of the program sees them: passwords (argon2), device
//! tokens (random, stored as SHA-256 only), and the checks that go with them.

use argon2::password_hash::phc::PasswordHash;
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::db::repo::accounts::{self, Device, User};
use crate::db::repo::{sign_in, web_sessions};
use crate::db::{DbConn, DbError, dialect, write_txn};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("a user named {0:?} already exists")]
    UserExists(String),
    #[error("there is no user named {0:?}")]
    NoSuchUser(String),
    #[error("{0}")]
    Invalid(String),
    #[error("hashing the password failed: {0}")]
    Hash(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for AccountError {
    fn from(e: diesel::result::Error) -> Self {
        AccountError::Db(DbError::Query(e))
    }
}

pub fn hash_password(password: &str) -> Result<String, AccountError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

/// Whether `password` matches the stored hash; a malformed hash never matches.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash that no password matches, verified against when the user does not exist, so
/// that a wrong name takes as long as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("offsync decoy password").unwrap_or_default())
}

/// What a user may do ([`crate::editing::Rights`] on the main site).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Administrator,
    Office,
    Engineer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Administrator => "administrator",
            Role::Office => "office",
            Role::Engineer => "engineer",
        }
    }

    /// A stored or typed role; an unknown one is the office's (the default).
    pub fn parse(text: &str) -> Option<Role> {
        match text.trim().to_ascii_lowercase().as_str() {
            "administrator" | "admin" => Some(Role::Administrator),
            "office" => Some(Role::Office),
            "engineer" => Some(Role::Engineer),
            _ => None,
        }
    }

    pub fn of(user: &User) -> Role {
        Role::parse(&user.role).unwrap_or(if user.is_admin {
            Role::Administrator
        } else {
            Role::Office
        })
    }

    pub fn rights(self) -> crate::editing::Rights {
        match self {
            Role::Administrator => crate::editing::Rights::Administrator,
            Role::Office => crate::editing::Rights::Office,
            Role::Engineer => crate::editing::Rights::Engineer,
        }
    }
}

/// A new user: an administrator, or else the office's role (what scripts made before roles
/// existed).
pub fn add_user(
    conn: &mut DbConn,
    name: &str,
    password: &str,
    is_admin: bool,
) -> Result<User, AccountError> {
    let role = if is_admin {
        Role::Administrator
    } else {
        Role::Office
    };
    add_user_with_role(conn, name, password, role)
}

pub fn add_user_with_role(
    conn: &mut DbConn,
    name: &str,
    password: &str,
    role: Role,
) -> Result<User, AccountError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(AccountError::Invalid(
            "a user name must be 1 to 100 printable characters".into(),
        ));
    }
    check_password(password)?;
    let hash = hash_password(password)?;
    let id = uuid::Uuid::new_v4().to_string();
    write_txn(conn, |c, now| {
        if accounts::user_by_name(c, name)?.is_some() {
            return Err(AccountError::UserExists(name.to_owned()));
        }
        accounts::insert_user(c, &id, name, &hash, role.as_str(), now)?;
        accounts::user_by_id(c, &id)?.ok_or_else(|| AccountError::NoSuchUser(name.to_owned()))
    })
}

/// Checks a sign-in; `None` for a wrong name or password alike.
/// How long a browser session stands: since its last request, and since sign-in.
#[derive(Debug, Clone, Copy)]
pub struct SessionTimeouts {
    pub idle: std::time::Duration,
    pub absolute: std::time::Duration,
}

impl Default for SessionTimeouts {
    /// A working day of idleness; a week at most.
    fn default() -> Self {
        SessionTimeouts {
            idle: std::time::Duration::from_secs(8 * 3600),
            absolute: std::time::Duration::from_secs(7 * 24 * 3600),
        }
    }
}

fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// A session's last request is written at most this often (a page view is a read), and at
/// least four times per idle timeout.
const SEEN_EVERY: i64 = 60_000_000;

/// Starts a browser session for the user: the secret its cookie will carry. The server
/// keeps only the secret's digest.
pub fn start_session(
    conn: &mut DbConn,
    user_id: &str,
    timeouts: &SessionTimeouts,
) -> Result<String, DbError> {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let secret = hex::encode(secret);
    write_txn(conn, |c, now| -> Result<(), DbError> {
        // Sessions of anyone that can no longer be used go: the table holds only live ones.
        web_sessions::delete_expired(
            c,
            now.saturating_sub(micros(timeouts.idle)),
            now.saturating_sub(micros(timeouts.absolute)),
        )?;
        web_sessions::insert(c, &token_hash(&secret), user_id, now)
    })?;
    Ok(secret)
}

/// The user whose session `secret` is, while it stands: not signed out, not idle or old
/// past `timeouts`, its user neither deleted nor disabled. A session that no longer
/// stands is deleted.
pub fn session_user(
    conn: &mut DbConn,
    secret: &str,
    timeouts: &SessionTimeouts,
) -> Result<Option<User>, DbError> {
    if secret.is_empty() || secret.len() > 200 {
        return Ok(None);
    }
    let id = token_hash(secret);
    let Some(session) = web_sessions::find(conn, &id)? else {
        return Ok(None);
    };
    let now = chrono::Utc::now().timestamp_micros();
    let expired = session.seen_at < now.saturating_sub(micros(timeouts.idle))
        || session.created_at < now.saturating_sub(micros(timeouts.absolute));
    let user = if expired {
        None
    } else {
        accounts::user_by_id(conn, &session.user_id)?.filter(|u| !u.is_disabled())
    };
    match &user {
        None => write_txn(conn, |c, _| -> Result<(), DbError> {
            web_sessions::delete(c, &id)
        })?,
        Some(_) if now - session.seen_at > SEEN_EVERY.min(micros(timeouts.idle) / 4) => {
            write_txn(conn, |c, now| -> Result<(), DbError> {
                web_sessions::touch(c, &id, now)
            })?
        }
        Some(_) => {}
    }
    Ok(user)
}

/// Signs one browser out for good: its cookie, or any copy of it, is worthless after.
pub fn end_session(conn: &mut DbConn, secret: &str) -> Result<(), DbError> {
    write_txn(conn, |c, _| -> Result<(), DbError> {
        web_sessions::delete(c, &token_hash(secret))
    })
}

/// Signs a user out everywhere; how many sessions ended.
pub fn end_all_sessions(conn: &mut DbConn, user_id: &str) -> Result<usize, DbError> {
    write_txn(conn, |c, _| web_sessions::delete_for_user(c, user_id))
}

fn check_password(password: &str) -> Result<(), AccountError> {
    if password.len() < 4 {
        return Err(AccountError::Invalid(
            "a password must have at least 4 characters".into(),
        ));
    }
    Ok(())
}

/// A new password for the user named `name`; every session of theirs ends.
pub fn set_password(conn: &mut DbConn, name: &str, password: &str) -> Result<User, AccountError> {
    check_password(password)?;
    let hash = hash_password(password)?;
    write_txn(conn, |c, _| {
        let user = accounts::user_by_name(c, name.trim())?
            .ok_or_else(|| AccountError::NoSuchUser(name.to_owned()))?;
        accounts::set_password_hash(c, &user.id, &hash)?;
        web_sessions::delete_for_user(c, &user.id)?;
        Ok(user)
    })
}

/// Disables (no sign-in, no sync, every session ended at once) or enables the user named
/// `name`.
pub fn set_disabled(conn: &mut DbConn, name: &str, disabled: bool) -> Result<User, AccountError> {
    write_txn(conn, |c, now| {
        let user = accounts::user_by_name(c, name.trim())?
            .ok_or_else(|| AccountError::NoSuchUser(name.to_owned()))?;
        accounts::set_disabled(c, &user.id, disabled.then_some(now))?;
        if disabled {
            web_sessions::delete_for_user(c, &user.id)?;
        }
        accounts::user_by_id(c, &user.id)?.ok_or_else(|| AccountError::NoSuchUser(name.to_owned()))
    })
}

pub fn sign_in(conn: &mut DbConn, name: &str, password: &str) -> Result<Option<User>, DbError> {
    let user = accounts::user_by_name(conn, name.trim())?;
    let hash = user
        .as_ref()
        .map_or(decoy_hash(), |u| u.password_hash.as_str());
    let ok = verify_password(hash, password);
    Ok(user.filter(|_| ok))
}

/// How many failed sign-ins are allowed within `window`, per account name and per client
/// address; past either, sign-in is refused without checking the password until the
/// oldest failure leaves the window.
/// How many failed sign-ins are allowed within `window`.
#[derive(Debug, Clone, Copy)]
pub struct SignInLimits {
    /// Per account name from one client address: what a stranger at another address
    /// cannot use to lock a named person out.
    pub per_account: u32,
    /// Per client address, whatever the account names.
    pub per_address: u32,
    /// Per account name from every address together: the ceiling a spread-out guesser
    /// meets.
    pub per_account_ceiling: u32,
    pub window: std::time::Duration,
}

impl Default for SignInLimits {
    fn default() -> Self {
        SignInLimits {
            per_account: 5,
            per_address: 20,
            per_account_ceiling: 100,
            window: std::time::Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Debug)]
pub enum SignIn {
    Welcome(User),
    Refused,
    /// The right password for a disabled user.
    Disabled,
    Throttled {
        /// The account's limit (from this address, or its ceiling), not the address's.
        account: bool,
        retry_after: std::time::Duration,
    },
}

/// A sign-in under [`SignInLimits`]. The attempt is counted before the password is
/// checked, in the same transaction as the check of the limits and serialised with every
/// other attempt on the same account or address, so a burst of parallel guesses gets no
/// more tries than a sequence would. A right password then takes its attempt back (and
/// forgets the account's failures).
pub fn sign_in_limited(
    conn: &mut DbConn,
    name: &str,
    password: &str,
    address: &str,
    limits: &SignInLimits,
) -> Result<SignIn, DbError> {
    let window = i64::try_from(limits.window.as_micros()).unwrap_or(i64::MAX);
    let account: String = name.trim().to_lowercase().chars().take(100).collect();
    let pair = format!("{account}\u{1f}{address}");
    let counted = [
        (sign_in::PAIR, pair.as_str(), limits.per_account),
        (
            sign_in::ACCOUNT,
            account.as_str(),
            limits.per_account_ceiling,
        ),
        (sign_in::ADDRESS, address, limits.per_address),
    ];
    let attempt = write_txn(conn, |c, now| -> Result<Result<i64, SignIn>, DbError> {
        let mut keys: Vec<String> = counted.iter().map(|(s, k, _)| format!("{s}:{k}")).collect();
        // One order for every attempt, so two of them cannot wait for each other.
        keys.sort();
        for key in &keys {
            dialect::lock_key(c, key)?;
        }
        let since = now.saturating_sub(window);
        for (scope, subject, max) in counted {
            let (failures, oldest) = sign_in::failures_since(c, scope, subject, since)?;
            if failures >= max {
                let free_at = oldest.unwrap_or(now).saturating_add(window);
                let wait = u64::try_from(free_at.saturating_sub(now)).unwrap_or(0);
                return Ok(Err(SignIn::Throttled {
                    account: scope != sign_in::ADDRESS,
                    retry_after: std::time::Duration::from_micros(wait.max(1_000_000)),
                }));
            }
        }
        for (scope, subject, _) in counted {
            sign_in::record_failure(c, scope, subject, now)?;
        }
        // Old failures no longer count: keep the table small.
        sign_in::forget_before(c, since)?;
        Ok(Ok(now))
    })?;
    let at = match attempt {
        Ok(at) => at,
        Err(throttled) => return Ok(throttled),
    };
    Ok(match sign_in(conn, name, password)? {
        Some(user) => {
            write_txn(conn, |c, _| -> Result<(), DbError> {
                sign_in::withdraw(c, sign_in::ADDRESS, address, at)?;
                sign_in::forget(c, sign_in::PAIR, &pair)?;
                sign_in::forget(c, sign_in::ACCOUNT, &account)
            })?;
            if user.is_disabled() {
                SignIn::Disabled
            } else {
                SignIn::Welcome(user)
            }
        }
        None => SignIn::Refused,
    })
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new device token: a prefix saying what it is, then 256 random bits in hex. Letters,
/// digits, `_` and `.` only, never starting with `-`.
pub fn new_token() -> String {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    format!("osd_{}", hex::encode(secret))
}

/// Registers a device for `user_name`; returns the device and its token (shown once).
pub fn add_device(
    conn: &mut DbConn,
    user_name: &str,
    label: &str,
) -> Result<(Device, String), AccountError> {
    let label = label.trim();
    if label.is_empty() || label.len() > 200 {
        return Err(AccountError::Invalid(
            "a device name must be 1 to 200 characters".into(),
        ));
    }
    let token = new_token();
    let id = uuid::Uuid::new_v4().to_string();
    write_txn(conn, |c, now| {
        let user = accounts::user_by_name(c, user_name.trim())?
            .ok_or_else(|| AccountError::NoSuchUser(user_name.to_owned()))?;
        accounts::insert_device(c, &id, &user.id, label, &token_hash(&token), now)?;
        let device = accounts::device_by_id(c, &id)?
            .ok_or_else(|| AccountError::Invalid("the new device vanished".into()))?;
        Ok((device, token))
    })
}

/// What a laptop's enrolment came to.
pub enum Enrolment {
    /// A new device of the person, and its token (shown once).
    Welcome(Device, String),
    /// Not signed in: why (wrong password, disabled, throttled).
    Refused(SignIn),
    /// Signed in, but the laptop's name does not fit.
    Invalid(String),
}

/// A laptop connecting itself (docs/protocol.md §9): the sign-in page's check, under its
/// limits, then a new device of that person named `label`.
pub fn enrol(
    conn: &mut DbConn,
    name: &str,
    password: &str,
    address: &str,
    limits: &SignInLimits,
    label: &str,
) -> Result<Enrolment, AccountError> {
    let user = match sign_in_limited(conn, name, password, address, limits)? {
        SignIn::Welcome(user) => user,
        refused => return Ok(Enrolment::Refused(refused)),
    };
    match add_device(conn, &user.name, label) {
        Ok((device, token)) => Ok(Enrolment::Welcome(device, token)),
        Err(AccountError::Invalid(m)) => Ok(Enrolment::Invalid(m)),
        Err(e) => Err(e),
    }
}

/// The device a bearer token belongs to, unless unknown or revoked. The lookup is by the
/// token's hash, so response times say nothing about how much of a guess was right.
pub fn device_for_token(conn: &mut DbConn, token: &str) -> Result<Option<Device>, DbError> {
    if token.is_empty() || token.len() > 200 {
        return Ok(None);
    }
    let Some(device) = accounts::device_by_token_hash(conn, &token_hash(token))? else {
        return Ok(None);
    };
    // A disabled user's devices stop syncing at once.
    let active = accounts::user_by_id(conn, &device.user_id)?.is_some_and(|u| !u.is_disabled());
    Ok(active.then_some(device))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("correct horse").unwrap();
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "correct horsf"));
        assert!(!verify_password("not a hash", "correct horse"));
    }

    #[test]
    fn tokens_are_command_line_safe_and_unique() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        for t in [&a, &b] {
            assert!(!t.starts_with('-'));
            assert!(
                t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            );
        }
        assert_ne!(token_hash(&a), a);
    }
}
