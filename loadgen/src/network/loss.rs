//! Packet loss: which packets the link drops.
//!
//! Two models, as network emulators (netem, mahimahi) offer them:
//!
//! - **independent**: each packet is dropped with probability *p*, whatever happened to
//!   the one before. Real links rarely lose this way, but it is the textbook case.
//! - **bursty**, the Gilbert–Elliott model: the link is either *good* (delivers every
//!   packet) or *bad* (drops every packet), and moves between the two at random. From the
//!   mean loss *p* and the mean burst length *b* (packets lost in a row):
//!   P(bad → good) = 1/*b*, P(good → bad) = *p* / (*b* (1 − *p*)), so the link spends a
//!   fraction *p* of packets in the bad state and each stay lasts *b* packets on
//!   average. A burst is what a full router queue or a radio fade does, and it is what
//!   hurts TCP most: several segments of one window lost together.
//!
//!   A burst is also a moment: it ends once the link has carried nothing for
//!   [`QUIET_ENDS_A_BURST`] (TCP's minimum retransmission timeout). The chain alone
//!   counts packets, not time, so a connection reduced to one retransmission per timeout
//!   would step through the bad state once per timeout: at *b* = 3 each lone
//!   retransmission stays lost with probability 2/3 and the timeouts double: a 15 MB
//!   transfer of `pushlab link --loss 2%,burst=3` took 2.5 s to 35 s over fourteen runs
//!   (one failure of `tests/link.rs`, its message lost, fits a stall past the 120 s
//!   deadline); with quiet spells ending bursts, 1.6 s to 4.4 s over twelve. A real fade
//!   is over long before a sender's timer fires.

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Loss on one direction of the link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Loss {
    /// Mean fraction of packets dropped, in [0, 1).
    pub rate: f64,
    /// Mean number of packets lost in a row (Gilbert–Elliott); `None`: independent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_burst_packets: Option<f64>,
}

/// Loss both ways.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LossSpec {
    /// Client → server packets (requests, ACKs of what the server sent).
    pub to_server: Loss,
    /// Server → client packets (responses, events, frames).
    pub to_clients: Loss,
}

impl Loss {
    /// Drops nothing.
    pub fn is_none(&self) -> bool {
        self.rate == 0.0
    }
}

impl LossSpec {
    /// Drops nothing either way.
    pub fn is_none(&self) -> bool {
        self.to_server.is_none() && self.to_clients.is_none()
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.rate * 100.0)?;
        if let Some(burst) = self.mean_burst_packets {
            write!(f, " in bursts of {burst}")?;
        }
        Ok(())
    }
}

impl fmt::Display for LossSpec {
    /// `1%` when both ways are alike, else `1% to the server, 0% to the clients`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_server == self.to_clients {
            true => write!(f, "{}", self.to_server),
            false => write!(f, "{} to the server, {} to the clients", self.to_server, self.to_clients),
        }
    }
}

/// The conditions of `--loss`, one run each: a type of its own so that clap keeps the
/// list whole (its own list handling would split at every comma, `burst=4` included).
#[derive(Debug, Clone, PartialEq)]
pub struct LossList(pub Vec<LossSpec>);

/// [`parse_loss_list`] for clap.
pub fn parse_loss_flag(text: &str) -> Result<LossList, String> {
    parse_loss_list(text).map(LossList)
}

const EXAMPLE: &str =
    "e.g. --loss 1%, --loss 0%,1%,3%, --loss 1%,burst=4 or --loss 0%/2% (to the server / to the clients)";

/// Parses `--loss`: a comma-separated list of conditions, each `P` (both ways) or
/// `UP/DOWN` (client → server / server → client), optionally followed by `burst=N` for
/// Gilbert–Elliott bursts of mean length N. `--loss 0%,1%,burst=4,3%` is three runs.
/// Percentages need their `%`: `1` could mean 1 % or 100 %, and a wrong guess measures a
/// link that loses everything.
pub fn parse_loss_list(text: &str) -> Result<Vec<LossSpec>, String> {
    let mut specs: Vec<LossSpec> = Vec::new();
    for token in text.split(',').map(str::trim) {
        if let Some(burst) = token.strip_prefix("burst=") {
            let spec = specs.last_mut().ok_or_else(|| format!("burst= follows a loss rate, {EXAMPLE}"))?;
            let burst: f64 =
                burst.parse().ok().filter(|b: &f64| b.is_finite() && *b >= 1.0).ok_or_else(|| {
                    format!("burst={burst}: a mean burst length is a number of packets ≥ 1")
                })?;
            for loss in [&mut spec.to_server, &mut spec.to_clients] {
                if !loss.is_none() {
                    loss.mean_burst_packets = Some(burst);
                    check_burst(loss)?;
                }
            }
            continue;
        }
        let (up, down) = match token.split_once('/') {
            Some((up, down)) => (parse_percent(up)?, parse_percent(down)?),
            None => {
                let both = parse_percent(token)?;
                (both, both)
            }
        };
        specs.push(LossSpec {
            to_server: Loss { rate: up, mean_burst_packets: None },
            to_clients: Loss { rate: down, mean_burst_packets: None },
        });
    }
    if specs.is_empty() {
        return Err(format!("--loss needs a value, {EXAMPLE}"));
    }
    Ok(specs)
}

fn parse_percent(text: &str) -> Result<f64, String> {
    let Some(number) = text.trim().strip_suffix('%') else {
        return Err(format!("{text:?}: write the loss as a percentage with its %, {EXAMPLE}"));
    };
    match number.trim().parse::<f64>() {
        Ok(p) if p.is_finite() && (0.0..50.0).contains(&p) => Ok(p / 100.0),
        Ok(_) => Err(format!("{text}: loss must be at least 0% and below 50% (TCP barely moves above that)")),
        Err(_) => Err(format!("{text:?} is not a percentage, {EXAMPLE}")),
    }
}

/// A burst model needs P(good → bad) ≤ 1, i.e. p ≤ b / (b + 1).
fn check_burst(loss: &Loss) -> Result<(), String> {
    let b = loss.mean_burst_packets.unwrap_or(1.0);
    if loss.rate > b / (b + 1.0) {
        return Err(format!(
            "{}% loss cannot come in bursts of {b}: the bursts would overlap",
            loss.rate * 100.0
        ));
    }
    Ok(())
}

/// The quiet spell that ends a burst: TCP's minimum retransmission timeout (Linux's
/// `TCP_RTO_MIN`), so a sender that waited out a timeout meets a fresh link.
pub const QUIET_ENDS_A_BURST: Duration = Duration::from_millis(200);

/// Decides, packet by packet, what one direction of the link drops.
#[derive(Debug)]
pub struct Dropper {
    /// P(good → bad) per packet; for independent loss, the loss rate itself.
    enter_bad: f64,
    /// P(bad → good) per packet; `None`: independent loss (no state).
    leave_bad: Option<f64>,
    bad: bool,
    /// When the last packet passed (a quiet spell ends a burst).
    last_packet: Option<Instant>,
    rng: fastrand::Rng,
}

impl Dropper {
    /// A dropper for `loss`, its randomness from `seed` (the tests fix it).
    pub fn new(loss: Loss, seed: u64) -> Dropper {
        let (enter_bad, leave_bad) = match loss.mean_burst_packets {
            Some(b) if loss.rate > 0.0 => (loss.rate / (b * (1.0 - loss.rate)), Some(1.0 / b)),
            _ => (loss.rate, None),
        };
        Dropper { enter_bad, leave_bad, bad: false, last_packet: None, rng: fastrand::Rng::with_seed(seed) }
    }

    /// Whether to drop the packet that arrived at `now`.
    pub fn drops(&mut self, now: Instant) -> bool {
        let quiet =
            self.last_packet.is_some_and(|last| now.saturating_duration_since(last) >= QUIET_ENDS_A_BURST);
        self.last_packet = Some(now);
        match self.leave_bad {
            None => self.enter_bad > 0.0 && self.rng.f64() < self.enter_bad,
            Some(leave) => {
                if quiet {
                    self.bad = false;
                }
                let flip = if self.bad { leave } else { self.enter_bad };
                if self.rng.f64() < flip {
                    self.bad = !self.bad;
                }
                self.bad
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_is_one_condition_each_and_burst_qualifies_the_one_before() {
        let specs = parse_loss_list("0%,1%,burst=4,3%").unwrap();
        assert_eq!(specs.len(), 3);
        assert!(specs[0].is_none());
        assert_eq!(specs[1].to_server, Loss { rate: 0.01, mean_burst_packets: Some(4.0) });
        assert_eq!(specs[1].to_clients, specs[1].to_server);
        assert_eq!(specs[2].to_clients, Loss { rate: 0.03, mean_burst_packets: None });
    }

    #[test]
    fn a_slash_gives_each_direction_its_own_loss() {
        let spec = parse_loss_list("0%/2%").unwrap().remove(0);
        assert!(spec.to_server.is_none());
        assert_eq!(spec.to_clients.rate, 0.02);
        assert_eq!(spec.to_string(), "0% to the server, 2% to the clients");
    }

    #[test]
    fn bad_loss_values_are_refused_with_an_example() {
        for bad in ["1", "abc", "-1%", "60%", "burst=4", "1%,burst=0", "1%,burst=x", ""] {
            let error = parse_loss_list(bad).unwrap_err();
            assert!(!error.is_empty(), "{bad}");
        }
        assert!(parse_loss_list("1").unwrap_err().contains("%"));
    }

    /// The observed drop fraction of n packets is within 4.5 standard deviations of the
    /// setting: a binomial bound that a correct dropper fails about once in 150,000 runs
    /// (and these seeds are fixed, so it never flakes).
    fn assert_rate(loss: Loss, seed: u64) -> Vec<bool> {
        let n = 200_000;
        let mut dropper = Dropper::new(loss, seed);
        let now = Instant::now();
        let drops: Vec<bool> = (0..n).map(|_| dropper.drops(now)).collect();
        let observed = drops.iter().filter(|&&d| d).count() as f64 / n as f64;
        // Bursts make drops correlated: the variance of the mean grows by about
        // (1 + p_stay_bad) / (1 − p_stay_bad) ≈ 2b.
        let inflation = loss.mean_burst_packets.map_or(1.0, |b| 2.0 * b);
        let sigma = (loss.rate * (1.0 - loss.rate) * inflation / n as f64).sqrt();
        assert!((observed - loss.rate).abs() < 4.5 * sigma, "{loss}: observed {observed}, sigma {sigma}");
        drops
    }

    #[test]
    fn a_quiet_spell_ends_a_burst() {
        // Bursts of 1,000 packets on average: once in one, the next packet is almost
        // surely lost too, unless the link was quiet for a retransmission timeout.
        let mut dropper = Dropper::new(Loss { rate: 0.5, mean_burst_packets: Some(1000.0) }, 7);
        let start = Instant::now();
        let first_drop = (0u32..).find(|&i| dropper.drops(start + Duration::from_micros(i.into()))).unwrap();
        let busy = start + Duration::from_micros(first_drop.into());
        assert!(dropper.drops(busy + Duration::from_millis(1)), "a burst goes on while packets flow");
        let after_quiet = busy + Duration::from_millis(1) + QUIET_ENDS_A_BURST;
        assert!(!dropper.drops(after_quiet), "a retransmission after a timeout meets a fresh link");
    }

    #[test]
    fn independent_loss_drops_its_rate() {
        for (rate, seed) in [(0.01, 1), (0.03, 2), (0.2, 3)] {
            assert_rate(Loss { rate, mean_burst_packets: None }, seed);
        }
        let mut none = Dropper::new(Loss::default(), 4);
        assert!((0..10_000).all(|_| !none.drops(Instant::now())));
    }

    #[test]
    fn bursty_loss_drops_its_rate_in_bursts_of_its_length() {
        let loss = Loss { rate: 0.02, mean_burst_packets: Some(4.0) };
        let drops = assert_rate(loss, 5);
        // Mean run length of consecutive drops.
        let mut bursts = Vec::new();
        let mut run = 0;
        for d in drops {
            match d {
                true => run += 1,
                false if run > 0 => {
                    bursts.push(run as f64);
                    run = 0;
                }
                false => {}
            }
        }
        let mean = bursts.iter().sum::<f64>() / bursts.len() as f64;
        assert!((mean - 4.0).abs() < 0.5, "mean burst {mean} over {} bursts", bursts.len());
    }
}
