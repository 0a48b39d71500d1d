//! Output formatting: pure functions from locks to text, as kubectl prints
//! things (tables, `describe`, durations, JSON and YAML views).

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// Placeholder for a missing value, as kubectl prints it.
pub const NONE: &str = "<none>";

/// What `describe` says when a lock has no fencing token.
pub const NO_FENCING_TOKEN: &str = "<none> (plain try_acquire tenures have none; \
     a guard records its token at its first renewal)";

/// One lock as the plugin shows it: a `celers_kube_lease::LockInfo` and the
/// namespace it was found in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lock {
    /// The namespace of its Lease.
    pub namespace: String,
    /// The lock's key.
    pub key: String,
    /// The name of its Lease.
    pub lease: String,
    /// `holderIdentity`, live or not.
    pub holder: Option<String>,
    /// `leaseDurationSeconds`.
    pub ttl_secs: Option<i32>,
    /// `acquireTime`.
    pub acquired_at: Option<DateTime<Utc>>,
    /// `renewTime`.
    pub renewed_at: Option<DateTime<Utc>>,
    /// When it expires by the API server's clock.
    pub expires_at: Option<DateTime<Utc>>,
    /// How long it stays held at least; `None` when free or expired.
    pub expires_in: Option<Duration>,
    /// How long the current tenure has lasted; `None` when not held.
    pub held_for: Option<Duration>,
    /// `leaseTransitions`.
    pub transitions: i32,
    /// The fencing token of the guard holding it, once recorded.
    pub fencing_token: Option<u64>,
    /// The Lease's resourceVersion.
    pub resource_version: String,
}

impl Lock {
    /// The lock `info` found in `namespace`.
    pub fn new(namespace: &str, info: celers_kube_lease::LockInfo) -> Self {
        Self {
            namespace: namespace.to_owned(),
            fencing_token: info.fencing_token.map(celers_kube_lease::FencingToken::get),
            key: info.key,
            lease: info.lease,
            holder: info.holder,
            ttl_secs: info.ttl_secs,
            acquired_at: info.acquired_at,
            renewed_at: info.renewed_at,
            expires_at: info.expires_at,
            expires_in: info.expires_in,
            held_for: info.held_for,
            transitions: info.transitions,
            resource_version: info.resource_version,
        }
    }

    /// `held`, `expired` (a holder whose time ran out) or `free` (no holder).
    pub fn state(&self) -> State {
        match (&self.holder, self.expires_in) {
            (_, Some(_)) => State::Held,
            (Some(_), None) => State::Expired,
            (None, None) => State::Free,
        }
    }

    /// Whether a sweep with `grace` would delete it when the API server's
    /// clock reads at least `server_now`: it has no holder (or lacks the
    /// times to tell), or it expired more than `grace` before `server_now`.
    pub fn is_sweepable(&self, server_now: DateTime<Utc>, grace: Duration) -> bool {
        if self.expires_in.is_some() {
            return false;
        }
        let Some(expires_at) = self.expires_at else {
            return true;
        };
        chrono::TimeDelta::from_std(grace)
            .ok()
            .and_then(|grace| expires_at.checked_add_signed(grace))
            .is_some_and(|collectable| server_now >= collectable)
    }
}

/// The state of a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// A live holder.
    Held,
    /// A holder whose time ran out; free to take or sweep.
    Expired,
    /// No holder.
    Free,
}

impl State {
    /// As printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Expired => "expired",
            Self::Free => "free",
        }
    }
}

/// A duration as kubectl prints ages (apimachinery's `HumanDuration`):
/// about 2 to 3 significant figures: `45s`, `3m20s`, `15m`, `2h5m`, `10h`,
/// `3d4h`, `30d`, `2y10d`, `9y`.
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{h}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        let dy = days % 365;
        return if dy == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{dy}d")
        };
    }
    format!("{years}y")
}

/// Parses a duration as kubectl's flags take them: a sequence of numbers
/// with units `ms`, `s`, `m`, `h` or `d` (`90s`, `1h30m`, `0`), or a bare
/// number of seconds.
///
/// # Errors
///
/// A message saying what is wrong with `text`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid =
        |why: &str| format!("invalid duration {text:?}: {why} (examples: 60s, 5m, 1h30m)");
    let text = text.trim();
    if text.is_empty() {
        return Err(invalid("empty"));
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(invalid("expected a number"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| invalid("number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_secs: u64 = match &rest[..unit_len] {
            "ms" => 0,
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "" => return Err(invalid("missing unit")),
            _ => return Err(invalid("unknown unit")),
        };
        let part = if unit_secs == 0 {
            Duration::from_millis(number)
        } else {
            number
                .checked_mul(unit_secs)
                .map(Duration::from_secs)
                .ok_or_else(|| invalid("too large"))?
        };
        total = total
            .checked_add(part)
            .ok_or_else(|| invalid("too large"))?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// `text` with control characters escaped (`\n`, `\u{1b}`), so that a
/// key cannot break a table apart or send escape sequences to the terminal,
/// as kubectl escapes what it prints.
pub fn escape_terminal(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A table as kubectl prints one: a header in capitals, then rows, each
/// column but the last padded to its widest cell plus 3 spaces (and at least
/// 6 wide), so columns are separated by at least 3 spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    const MIN_WIDTH: usize = 6;
    const PADDING: usize = 3;
    let header: Vec<String> = header.iter().map(|h| h.to_uppercase()).collect();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| escape_terminal(cell)).collect())
        .collect();
    let lines: Vec<&[String]> = std::iter::once(header.as_slice())
        .chain(rows.iter().map(Vec::as_slice))
        .collect();
    let columns = lines.iter().map(|line| line.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            let widest = lines
                .iter()
                .filter_map(|line| line.get(column))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0);
            (widest + PADDING).max(MIN_WIDTH)
        })
        .collect();
    let mut out = String::new();
    for line in lines {
        let mut text = String::new();
        for (column, cell) in line.iter().enumerate() {
            text.push_str(cell);
            if column + 1 < line.len() {
                let width = widths.get(column).copied().unwrap_or(0);
                let pad = width.saturating_sub(cell.chars().count());
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// RFC 3339 in UTC to the second, as kubectl prints timestamps in tables.
pub fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// RFC 3339 in UTC to the microsecond, as a Lease stores its times.
pub fn micro_timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The EXPIRES IN cell: the time left, `expired` for a holder whose time ran
/// out, `<none>` without a holder.
pub fn expires_in_cell(lock: &Lock) -> String {
    match lock.state() {
        State::Held => lock.expires_in.map(human_duration).unwrap_or_default(),
        State::Expired => "expired".to_owned(),
        State::Free => NONE.to_owned(),
    }
}

fn or_none<T>(value: Option<T>, show: impl FnOnce(T) -> String) -> String {
    value.map(show).unwrap_or_else(|| NONE.to_owned())
}

fn ttl_cell(ttl_secs: Option<i32>) -> String {
    or_none(ttl_secs, |secs| {
        human_duration(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
    })
}

/// The `locks` table. `all_namespaces` adds a NAMESPACE column first,
/// `wide` adds FENCING TOKEN, RENEWED and RESOURCE VERSION. Rows come in the
/// order given.
pub fn locks_table(locks: &[Lock], all_namespaces: bool, wide: bool) -> String {
    let mut header = Vec::new();
    if all_namespaces {
        header.push("NAMESPACE");
    }
    header.extend([
        "KEY",
        "HOLDER",
        "EXPIRES IN",
        "TTL",
        "HELD FOR",
        "TRANSITIONS",
        "LEASE",
    ]);
    if wide {
        header.extend(["FENCING TOKEN", "RENEWED", "RESOURCE VERSION"]);
    }
    let rows: Vec<Vec<String>> = locks
        .iter()
        .map(|lock| {
            let mut row = Vec::new();
            if all_namespaces {
                row.push(lock.namespace.clone());
            }
            row.extend([
                lock.key.clone(),
                or_none(lock.holder.clone(), |holder| holder),
                expires_in_cell(lock),
                ttl_cell(lock.ttl_secs),
                or_none(lock.held_for, human_duration),
                lock.transitions.to_string(),
                lock.lease.clone(),
            ]);
            if wide {
                row.extend([
                    or_none(lock.fencing_token, |token| token.to_string()),
                    or_none(lock.renewed_at, timestamp),
                    lock.resource_version.clone(),
                ]);
            }
            row
        })
        .collect();
    table(&header, &rows)
}

/// Sorts locks by namespace, then key.
pub fn sort_locks(locks: &mut [Lock]) {
    locks.sort_by(|a, b| (&a.namespace, &a.key).cmp(&(&b.namespace, &b.key)));
}

/// `Label:   value` lines aligned as kubectl describe aligns them (the
/// values start 2 spaces after the longest label).
pub fn fields(fields: &[(&str, String)]) -> String {
    let width = fields
        .iter()
        .map(|(label, _)| label.chars().count() + 1)
        .max()
        .unwrap_or(0)
        + 2;
    let mut out = String::new();
    for (label, value) in fields {
        let label = format!("{label}:");
        let pad = width.saturating_sub(label.chars().count());
        out.push_str(&label);
        out.extend(std::iter::repeat_n(' ', pad));
        out.push_str(&escape_terminal(value));
        let trimmed = out.trim_end_matches(' ').len();
        out.truncate(trimmed);
        out.push('\n');
    }
    out
}

/// Everything about one lock, in kubectl describe's style.
pub fn describe_text(lock: &Lock) -> String {
    fields(&[
        ("Key", lock.key.clone()),
        ("Lease", lock.lease.clone()),
        ("Namespace", lock.namespace.clone()),
        ("Holder", or_none(lock.holder.clone(), |holder| holder)),
        ("State", lock.state().as_str().to_owned()),
        ("Expires In", expires_in_cell(lock)),
        ("Expires At", or_none(lock.expires_at, micro_timestamp)),
        ("Acquired", or_none(lock.acquired_at, micro_timestamp)),
        ("Renewed", or_none(lock.renewed_at, micro_timestamp)),
        ("TTL", ttl_cell(lock.ttl_secs)),
        ("Held For", or_none(lock.held_for, human_duration)),
        ("Transitions", lock.transitions.to_string()),
        (
            "Fencing Token",
            lock.fencing_token
                .map_or_else(|| NO_FENCING_TOKEN.to_owned(), |token| token.to_string()),
        ),
        ("Resource Version", lock.resource_version.clone()),
    ])
}

/// What `release --force` says before it deletes.
pub fn force_release_notice(lock: &Lock) -> String {
    let holder = lock.holder.as_deref().unwrap_or(NONE);
    format!(
        "deleting Lease {}/{} of lock {:?}: holder {holder}, expires in {}",
        lock.namespace,
        lock.lease,
        lock.key,
        expires_in_cell(lock)
    )
}

/// `N Leases deleted`, singular for one.
pub fn leases_deleted(count: u64, dry_run: bool) -> String {
    let noun = if count == 1 { "Lease" } else { "Leases" };
    let suffix = if dry_run { " (dry run)" } else { "" };
    format!("{count} {noun} deleted{suffix}")
}

/// What kubectl prints (on stderr) when a listing is empty.
pub fn no_locks_found(namespace: Option<&str>) -> String {
    match namespace {
        Some(namespace) => format!("No locks found in {namespace} namespace."),
        None => "No locks found".to_owned(),
    }
}

/// One lock for `-o json` and `-o yaml`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LockView {
    /// The namespace of its Lease.
    pub namespace: String,
    /// The key.
    pub key: String,
    /// The Lease name.
    pub lease: String,
    /// `held`, `expired` or `free`.
    pub state: State,
    /// `holderIdentity`.
    pub holder: Option<String>,
    /// Whole seconds it stays held at least, when held.
    pub expires_in_seconds: Option<u64>,
    /// When it expires by the API server's clock.
    pub expires_at: Option<String>,
    /// `acquireTime`.
    pub acquired_at: Option<String>,
    /// `renewTime`.
    pub renewed_at: Option<String>,
    /// `leaseDurationSeconds`.
    pub ttl_seconds: Option<i32>,
    /// Whole seconds of the current tenure, when held.
    pub held_for_seconds: Option<u64>,
    /// `leaseTransitions`.
    pub transitions: i32,
    /// The guard's fencing token, once recorded.
    pub fencing_token: Option<u64>,
    /// The Lease's resourceVersion.
    pub resource_version: String,
}

impl From<&Lock> for LockView {
    fn from(lock: &Lock) -> Self {
        Self {
            namespace: lock.namespace.clone(),
            key: lock.key.clone(),
            lease: lock.lease.clone(),
            state: lock.state(),
            holder: lock.holder.clone(),
            expires_in_seconds: lock.expires_in.map(|d| d.as_secs()),
            expires_at: lock.expires_at.map(micro_timestamp),
            acquired_at: lock.acquired_at.map(micro_timestamp),
            renewed_at: lock.renewed_at.map(micro_timestamp),
            ttl_seconds: lock.ttl_secs,
            held_for_seconds: lock.held_for.map(|d| d.as_secs()),
            transitions: lock.transitions,
            fencing_token: lock.fencing_token,
            resource_version: lock.resource_version.clone(),
        }
    }
}

/// Several locks for `-o json` and `-o yaml`, like a Kubernetes list.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LockList {
    /// Always `LockList`.
    pub kind: &'static str,
    /// The locks.
    pub items: Vec<LockView>,
}

impl LockList {
    /// The list of `locks`, in their order.
    pub fn new(locks: &[Lock]) -> Self {
        Self {
            kind: "LockList",
            items: locks.iter().map(LockView::from).collect(),
        }
    }
}

/// A machine-readable output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Pretty-printed JSON.
    Json,
    /// YAML.
    Yaml,
}

/// `value` as JSON (pretty, with a final newline) or YAML.
///
/// # Errors
///
/// When serialization fails (it does not for the views of this module).
pub fn serialized(value: &impl Serialize, format: Format) -> Result<String, String> {
    match format {
        Format::Json => serde_json::to_string_pretty(value)
            .map(|text| text + "\n")
            .map_err(|e| format!("cannot print JSON: {e}")),
        Format::Yaml => serde_yaml::to_string(value).map_err(|e| format!("cannot print YAML: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("valid time")
            .with_timezone(&Utc)
    }

    fn held() -> Lock {
        Lock {
            namespace: "celers-beat".into(),
            key: "tasks/nightly".into(),
            lease: "tasks-nightly-0123456789abcdef".into(),
            holder: Some("scheduler-7d9f-abcde".into()),
            ttl_secs: Some(60),
            acquired_at: Some(at("2026-11-26T18:00:00.250000Z")),
            renewed_at: Some(at("2026-11-26T18:03:00.500000Z")),
            expires_at: Some(at("2026-11-26T18:04:00.500000Z")),
            expires_in: Some(Duration::from_millis(45_900)),
            held_for: Some(secs(200)),
            transitions: 3,
            fencing_token: Some(1234),
            resource_version: "1240".into(),
        }
    }

    fn expired() -> Lock {
        Lock {
            key: "tasks/b".into(),
            lease: "tasks-b-fedcba9876543210".into(),
            holder: Some("pod-2".into()),
            ttl_secs: Some(1),
            expires_in: None,
            held_for: None,
            transitions: 0,
            fencing_token: None,
            resource_version: "99".into(),
            ..held()
        }
    }

    fn free() -> Lock {
        Lock {
            namespace: "other".into(),
            key: "k".into(),
            lease: "k-00".into(),
            holder: None,
            ttl_secs: None,
            acquired_at: None,
            renewed_at: None,
            expires_at: None,
            expires_in: None,
            held_for: None,
            transitions: 1,
            fencing_token: None,
            resource_version: "7".into(),
        }
    }

    #[test]
    fn durations_like_kubectl() {
        let cases = [
            (0, "0s"),
            (1, "1s"),
            (45, "45s"),
            (59, "59s"),
            (60, "60s"),
            (119, "119s"),
            (120, "2m"),
            (121, "2m1s"),
            (200, "3m20s"),
            (599, "9m59s"),
            (600, "10m"),
            (659, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (2 * 3600 + 5 * 60, "125m"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (7 * 3600 + 59 * 60 + 59, "7h59m"),
            (8 * 3600, "8h"),
            (47 * 3600 + 3599, "47h"),
            (48 * 3600, "2d"),
            (3 * 86_400 + 4 * 3600, "3d4h"),
            (7 * 86_400 + 23 * 3600, "7d23h"),
            (8 * 86_400, "8d"),
            (729 * 86_400, "729d"),
            (730 * 86_400, "2y"),
            (740 * 86_400, "2y10d"),
            (8 * 365 * 86_400 - 1, "7y364d"),
            (8 * 365 * 86_400, "8y"),
            (100 * 365 * 86_400, "100y"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(human_duration(secs(seconds)), expected, "{seconds} s");
        }
        // Fractions are cut off, like Go's int(d.Seconds()).
        assert_eq!(human_duration(Duration::from_millis(45_999)), "45s");
        assert_eq!(human_duration(Duration::from_millis(999)), "0s");
        assert_eq!(
            human_duration(Duration::MAX),
            format!("{}y", u64::MAX / 86_400 / 365)
        );
    }

    #[test]
    fn the_brief_examples() {
        assert_eq!(human_duration(secs(45)), "45s");
        assert_eq!(human_duration(secs(200)), "3m20s");
        assert_eq!(human_duration(secs(2 * 3600 + 5 * 60)), "125m");
        assert_eq!(human_duration(secs(4 * 3600 + 5 * 60)), "4h5m");
        assert_eq!(human_duration(secs(76 * 3600)), "3d4h");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("60s"), Ok(secs(60)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("90"), Ok(secs(90)));
        assert_eq!(parse_duration("5m"), Ok(secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(secs(5400)));
        assert_eq!(parse_duration("2d"), Ok(secs(172_800)));
        assert_eq!(parse_duration("1m500ms"), Ok(Duration::from_millis(60_500)));
        assert_eq!(parse_duration(" 10s "), Ok(secs(10)));
        for bad in [
            "",
            "s",
            "10x",
            "1.5s",
            "-5s",
            "5 s",
            "h1",
            "99999999999999999999999s",
        ] {
            let error = parse_duration(bad).expect_err(bad);
            assert!(error.contains("invalid duration"), "{error}");
        }
        assert!(parse_duration("10").is_ok());
        assert!(parse_duration("10y")
            .expect_err("unit")
            .contains("unknown unit"));
        assert!(parse_duration("10m5")
            .expect_err("unit")
            .contains("missing unit"));
        assert!(parse_duration("999999999999999999d")
            .expect_err("big")
            .contains("too large"));
    }

    #[test]
    fn tables_align_like_kubectl() {
        let rows = vec![
            vec!["a".to_owned(), "bb".to_owned(), "c".to_owned()],
            vec!["longer-name".to_owned(), "x".to_owned(), "last".to_owned()],
        ];
        assert_eq!(
            table(&["name", "ab", "last column"], &rows),
            "NAME          AB    LAST COLUMN\n\
             a             bb    c\n\
             longer-name   x     last\n"
        );
        // No rows: the header alone; no trailing spaces anywhere.
        assert_eq!(table(&["KEY", "HOLDER"], &[]), "KEY   HOLDER\n");
        let rows = vec![vec!["k".to_owned(), String::new()]];
        assert_eq!(table(&["KEY", "HOLDER"], &rows), "KEY   HOLDER\nk\n");
        // Control characters are escaped.
        let rows = vec![vec!["a\nb".to_owned(), "\u{1b}[31mred".to_owned()]];
        assert_eq!(
            table(&["KEY", "V"], &rows),
            "KEY    V\na\\nb   \\u{1b}[31mred\n"
        );
        assert_eq!(fields(&[("Key", "tab\there".into())]), "Key:  tab\\there\n");
        assert_eq!(escape_terminal("plain/ключ"), "plain/ключ");
        // Width counts characters, not bytes.
        let rows = vec![vec!["ключ-ключ".to_owned(), "x".to_owned()]];
        assert_eq!(
            table(&["KEY", "V"], &rows),
            "KEY         V\nключ-ключ   x\n"
        );
    }

    #[test]
    fn locks_table_plain() {
        let mut locks = vec![held(), expired()];
        sort_locks(&mut locks);
        assert_eq!(
            locks_table(&locks, false, false),
            "KEY             HOLDER                 EXPIRES IN   TTL   HELD FOR   TRANSITIONS   LEASE\n\
             tasks/b         pod-2                  expired      1s    <none>     0             tasks-b-fedcba9876543210\n\
             tasks/nightly   scheduler-7d9f-abcde   45s          60s   3m20s      3             tasks-nightly-0123456789abcdef\n"
        );
    }

    #[test]
    fn locks_table_all_namespaces_and_wide() {
        let mut locks = vec![free(), held(), expired()];
        sort_locks(&mut locks);
        let keys: Vec<(&str, &str)> = locks
            .iter()
            .map(|l| (l.namespace.as_str(), l.key.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("celers-beat", "tasks/b"),
                ("celers-beat", "tasks/nightly"),
                ("other", "k")
            ]
        );
        assert_eq!(
            locks_table(&locks, true, true),
            "NAMESPACE     KEY             HOLDER                 EXPIRES IN   TTL      HELD FOR   TRANSITIONS   LEASE                            FENCING TOKEN   RENEWED                RESOURCE VERSION\n\
             celers-beat   tasks/b         pod-2                  expired      1s       <none>     0             tasks-b-fedcba9876543210         <none>          2026-11-26T18:03:00Z   99\n\
             celers-beat   tasks/nightly   scheduler-7d9f-abcde   45s          60s      3m20s      3             tasks-nightly-0123456789abcdef   1234            2026-11-26T18:03:00Z   1240\n\
             other         k               <none>                 <none>       <none>   <none>     1             k-00                             <none>          <none>                 7\n"
        );
        assert_eq!(
            locks_table(&[], true, false),
            "NAMESPACE   KEY   HOLDER   EXPIRES IN   TTL   HELD FOR   TRANSITIONS   LEASE\n"
        );
    }

    #[test]
    fn states_and_cells() {
        assert_eq!(held().state(), State::Held);
        assert_eq!(expired().state(), State::Expired);
        assert_eq!(free().state(), State::Free);
        assert_eq!(expires_in_cell(&held()), "45s");
        assert_eq!(expires_in_cell(&expired()), "expired");
        assert_eq!(expires_in_cell(&free()), "<none>");
        assert_eq!(State::Expired.as_str(), "expired");
        assert_eq!(ttl_cell(Some(3600)), "60m");
        assert_eq!(ttl_cell(Some(-1)), "0s");
        assert_eq!(ttl_cell(None), "<none>");
    }

    #[test]
    fn sweepable_locks() {
        let expired = expired(); // expired at 18:04:00.5
        let grace = secs(60);
        assert!(!expired.is_sweepable(at("2026-11-26T18:04:30Z"), grace));
        assert!(!expired.is_sweepable(at("2026-11-26T18:05:00Z"), grace));
        assert!(expired.is_sweepable(at("2026-11-26T18:05:00.5Z"), grace));
        assert!(expired.is_sweepable(at("2026-11-26T18:04:01Z"), Duration::ZERO));
        assert!(!held().is_sweepable(at("2030-01-01T00:00:00Z"), Duration::ZERO));
        assert!(free().is_sweepable(at("2000-01-01T00:00:00Z"), grace));
        assert!(!expired.is_sweepable(at("2030-01-01T00:00:00Z"), Duration::MAX));
    }

    #[test]
    fn describe_like_kubectl() {
        assert_eq!(
            describe_text(&held()),
            "Key:               tasks/nightly\n\
             Lease:             tasks-nightly-0123456789abcdef\n\
             Namespace:         celers-beat\n\
             Holder:            scheduler-7d9f-abcde\n\
             State:             held\n\
             Expires In:        45s\n\
             Expires At:        2026-11-26T18:04:00.500000Z\n\
             Acquired:          2026-11-26T18:00:00.250000Z\n\
             Renewed:           2026-11-26T18:03:00.500000Z\n\
             TTL:               60s\n\
             Held For:          3m20s\n\
             Transitions:       3\n\
             Fencing Token:     1234\n\
             Resource Version:  1240\n"
        );
        let text = describe_text(&expired());
        assert!(text.contains("\nState:             expired\n"), "{text}");
        assert!(text.contains("\nExpires In:        expired\n"), "{text}");
        assert!(text.contains("\nHeld For:          <none>\n"), "{text}");
        assert!(
            text.contains(
                "\nFencing Token:     <none> (plain try_acquire tenures have none; \
                 a guard records its token at its first renewal)\n"
            ),
            "{text}"
        );
        let text = describe_text(&free());
        for line in [
            "Holder:            <none>",
            "State:             free",
            "Expires In:        <none>",
            "Expires At:        <none>",
            "Acquired:          <none>",
            "Renewed:           <none>",
            "TTL:               <none>",
        ] {
            assert!(text.contains(&format!("{line}\n")), "{line} in {text}");
        }
    }

    #[test]
    fn fields_align_and_trim() {
        assert_eq!(
            fields(&[
                ("A", "1".into()),
                ("Longer", String::new()),
                ("B", "x".into())
            ]),
            "A:       1\nLonger:\nB:       x\n"
        );
        assert_eq!(fields(&[]), "");
    }

    #[test]
    fn messages() {
        assert_eq!(
            force_release_notice(&held()),
            "deleting Lease celers-beat/tasks-nightly-0123456789abcdef of lock \"tasks/nightly\": \
             holder scheduler-7d9f-abcde, expires in 45s"
        );
        assert_eq!(
            force_release_notice(&expired()),
            "deleting Lease celers-beat/tasks-b-fedcba9876543210 of lock \"tasks/b\": \
             holder pod-2, expires in expired"
        );
        assert!(force_release_notice(&free()).ends_with("holder <none>, expires in <none>"));
        assert_eq!(leases_deleted(0, false), "0 Leases deleted");
        assert_eq!(leases_deleted(1, false), "1 Lease deleted");
        assert_eq!(leases_deleted(2, true), "2 Leases deleted (dry run)");
        assert_eq!(
            no_locks_found(Some("ns")),
            "No locks found in ns namespace."
        );
        assert_eq!(no_locks_found(None), "No locks found");
    }

    #[test]
    fn json_and_yaml_views() {
        let locks = vec![held(), free()];
        let json = serialized(&LockList::new(&locks), Format::Json).expect("json");
        let value: serde_json::Value = serde_json::from_str(&json).expect("parses");
        assert_eq!(value["kind"], "LockList");
        let first = &value["items"][0];
        assert_eq!(first["namespace"], "celers-beat");
        assert_eq!(first["key"], "tasks/nightly");
        assert_eq!(first["state"], "held");
        assert_eq!(first["holder"], "scheduler-7d9f-abcde");
        assert_eq!(first["expiresInSeconds"], 45);
        assert_eq!(first["expiresAt"], "2026-11-26T18:04:00.500000Z");
        assert_eq!(first["acquiredAt"], "2026-11-26T18:00:00.250000Z");
        assert_eq!(first["renewedAt"], "2026-11-26T18:03:00.500000Z");
        assert_eq!(first["ttlSeconds"], 60);
        assert_eq!(first["heldForSeconds"], 200);
        assert_eq!(first["transitions"], 3);
        assert_eq!(first["fencingToken"], 1234);
        assert_eq!(first["resourceVersion"], "1240");
        let second = &value["items"][1];
        assert_eq!(second["state"], "free");
        assert!(second["holder"].is_null());
        assert!(second["expiresInSeconds"].is_null());
        assert!(json.ends_with("}\n"));

        let yaml = serialized(&LockView::from(&expired()), Format::Yaml).expect("yaml");
        assert!(
            yaml.starts_with("namespace: celers-beat\nkey: tasks/b\n"),
            "{yaml}"
        );
        assert!(yaml.contains("\nstate: expired\n"), "{yaml}");
        assert!(yaml.contains("\nfencingToken: null\n"), "{yaml}");
        assert!(yaml.contains("\nresourceVersion: '99'\n"), "{yaml}");
        let yaml = serialized(&LockList::new(&[]), Format::Yaml).expect("yaml");
        assert_eq!(yaml, "kind: LockList\nitems: []\n");
    }
}
