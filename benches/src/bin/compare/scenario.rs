//! What `compare --scenario` can run, each scenario's defaults, and the ratio arithmetic the
//! scenario reports share.
//!
//! Design decisions, and why:
//! - **One harness, several scenarios**: the servers, the proxy, the measuring and the judging
//!   are the same for every question issue 8 asks (IMAP → IMAP side by side, one huge folder,
//!   local-store transfers), so a scenario only chooses *what* is copied and *how it is
//!   reported*; figures from different scenarios stay comparable.
//! - **Defaults per scenario, not global**: `servers` keeps today's defaults and output names
//!   (`latest`, both corpora, 0 and 20 ms) so existing commands and CI are unchanged; the new
//!   scenarios ask "does mailferry keep up with the server/disk", which is a 0 ms question, so
//!   they default to 0 ms (a `--latency` list is still honoured) and to their own output name.
//! - **Ratios are `None` when either side is unknown or zero**, and the reports print "n/a":
//!   a missing `/usr/bin/time` or a failed run must never read as "0×" or "∞×".

use std::fmt;

/// A scenario of the comparison harness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// IMAP → IMAP on the `typical`/`heavy` corpora, every tool side by side (the default).
    Servers,
    /// One folder of small messages at two sizes (5,000 and 200,000 at scale 1.0): does the
    /// per-message rate and the peak memory hold up on a huge folder?
    BigFolder,
    /// mbox → IMAP import and IMAP → Maildir export against the servers'/disk's limit.
    Transfers,
}

impl Scenario {
    /// Every scenario, in the order `--help` lists them.
    pub const ALL: [Scenario; 3] = [Scenario::Servers, Scenario::BigFolder, Scenario::Transfers];

    /// Parses a `--scenario` value (case and surrounding blanks ignored, `_` read as `-`).
    pub fn parse(name: &str) -> Option<Scenario> {
        let wanted = name.trim().to_ascii_lowercase().replace('_', "-");
        Scenario::ALL.into_iter().find(|s| s.to_string() == wanted)
    }

    /// Base name of the output files when `--name` is not given.
    pub fn default_name(self) -> &'static str {
        match self {
            Scenario::Servers => "latest",
            Scenario::BigFolder => "big-folder",
            Scenario::Transfers => "transfers",
        }
    }

    /// Added round-trip times when `--latency` is not given.
    pub fn default_latency(self) -> Vec<u64> {
        match self {
            Scenario::Servers => vec![0, 20],
            Scenario::BigFolder | Scenario::Transfers => vec![0],
        }
    }

    /// `--corpus` when not given (`big-folder` has its own corpus and ignores it).
    pub fn default_corpus(self) -> &'static str {
        match self {
            Scenario::Servers => "both",
            Scenario::BigFolder | Scenario::Transfers => "typical",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scenario::Servers => "servers",
            Scenario::BigFolder => "big-folder",
            Scenario::Transfers => "transfers",
        })
    }
}

/// The clap value parser of `--scenario`.
pub fn parse_arg(value: &str) -> Result<Scenario, String> {
    Scenario::parse(value).ok_or_else(|| {
        let names: Vec<String> = Scenario::ALL.iter().map(ToString::to_string).collect();
        format!("unknown scenario {value:?} ({})", names.join(", "))
    })
}

/// `a / b`, or `None` when either is unknown, not finite, or `b` is not positive.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if a.is_finite() && b.is_finite() && b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// A ratio as `1.23×`, or `n/a`.
pub fn times(r: Option<f64>) -> String {
    r.map_or_else(|| "n/a".into(), |r| format!("{r:.2}×"))
}

/// A message count as the reports name sizes: `200k` for round thousands, else the number.
pub fn short_count(n: u64) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_names_round_trip_and_unknown_ones_are_refused() {
        for s in Scenario::ALL {
            assert_eq!(Scenario::parse(&s.to_string()), Some(s));
            assert_eq!(parse_arg(&s.to_string()), Ok(s));
        }
        assert_eq!(Scenario::parse(" Big_Folder "), Some(Scenario::BigFolder));
        let err = parse_arg("bigfolder").expect_err("refused");
        assert!(err.contains("servers, big-folder, transfers"), "{err}");
    }

    #[test]
    fn servers_keeps_todays_defaults_and_new_scenarios_default_to_0_ms() {
        assert_eq!(Scenario::Servers.default_name(), "latest");
        assert_eq!(Scenario::Servers.default_latency(), [0, 20]);
        assert_eq!(Scenario::Servers.default_corpus(), "both");
        assert_eq!(Scenario::BigFolder.default_name(), "big-folder");
        assert_eq!(Scenario::Transfers.default_name(), "transfers");
        assert_eq!(Scenario::Transfers.default_latency(), [0]);
        assert_eq!(Scenario::Transfers.default_corpus(), "typical");
    }

    #[test]
    fn ratios_of_unknown_or_zero_figures_are_not_numbers() {
        assert_eq!(ratio(Some(9.0), Some(10.0)), Some(0.9));
        assert_eq!(ratio(None, Some(1.0)), None);
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        assert_eq!(ratio(Some(f64::INFINITY), Some(1.0)), None);
        assert_eq!(times(Some(0.904)), "0.90×");
        assert_eq!(times(None), "n/a");
    }

    #[test]
    fn counts_are_shortened_only_when_round() {
        assert_eq!(short_count(200_000), "200k");
        assert_eq!(short_count(5_000), "5k");
        assert_eq!(short_count(1_250), "1250");
        assert_eq!(short_count(25), "25");
    }
}
