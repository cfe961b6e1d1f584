//! Adding up a run: what became of each sender's messages, and what bounded the figures.

use crate::{report::SenderFigures, scenario::Rate, tally::Tally};

/// Each sender's figures: `sent[s]` messages, each expected once at every connected reading
/// client but its sender, against what the clients' merged `total` received.
pub fn per_sender(sent: &[u64], connected: usize, total: &Tally) -> Vec<SenderFigures> {
    let receivers = (connected as u64).saturating_sub(1);
    sent.iter()
        .enumerate()
        .map(|(sender, &sent)| {
            let received = total.per_sender().get(sender).copied().unwrap_or_default();
            let expected = sent * receivers;
            SenderFigures {
                sender: sender as u32,
                sent,
                expected,
                delivered: received.delivered,
                lost: expected.saturating_sub(received.delivered),
                out_of_order: received.out_of_order,
            }
        })
        .collect()
}

/// The CPU figures of the sending period.
#[derive(Debug, Clone, Copy)]
pub struct Cpu {
    /// Cores the server used, if it was sampled.
    pub server: Option<f64>,
    /// Cores the generator used.
    pub generator: f64,
    /// The generator's runtime threads.
    pub threads: usize,
    /// The whole machine's busy fraction.
    pub machine_busy: Option<f64>,
    /// The machine's cores.
    pub cores: usize,
}

/// What bounded a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The generator used nearly all the CPU it can: it may be what limits the figures.
    pub generator_saturated: bool,
    /// What bounded the figures, in a sentence.
    pub bound: String,
    /// Cores that other processes (neither server nor generator) used meanwhile.
    pub others: Option<f64>,
}

/// Above this share of what it can use, a process counts as saturated.
const SATURATED: f64 = 0.9;
/// Above this share of all cores, the machine counts as saturated.
const MACHINE_SATURATED: f64 = 0.95;
/// Other processes using more than this many cores disturb the figures (a compiler, say).
const DISTURBING: f64 = 0.25;

impl Cpu {
    /// Says what bounded the run: the generator, the shared CPU, the server, or the scenario
    /// itself (its rate or window), in that order of suspicion.
    pub fn bound(&self, sending: bool, rate: Rate) -> Verdict {
        let cores = self.cores.max(1);
        let usable = self.threads.min(cores) as f64;
        let generator_saturated = self.generator >= SATURATED * usable;
        let server = self.server.map_or_else(
            || "not sampled".to_string(),
            |cores| format!("{cores:.2} cores"),
        );
        let others = self.machine_busy.map(|busy| {
            (busy * cores as f64 - self.generator - self.server.unwrap_or(0.0)).max(0.0)
        });
        let disturbed = others.filter(|&others| others >= DISTURBING);
        let mut bound = if !sending {
            "nothing: no messages were sent".to_string()
        } else if generator_saturated {
            format!(
                "the generator: it used {:.2} of the {usable} cores its threads can use, so it may \
                 be what limits these figures",
                self.generator
            )
        } else if let Some(busy) = self.machine_busy.filter(|&busy| busy >= MACHINE_SATURATED) {
            let shares = format!(
                "server {server}, generator {:.2} cores, other processes {:.2} cores",
                self.generator,
                others.unwrap_or(0.0)
            );
            let so = if disturbed.is_some() {
                "so these figures are lower than a quiet machine gives"
            } else {
                "so server and generator held each other back"
            };
            format!(
                "the machine's CPU: its {cores} cores were {:.0}% busy ({shares}), {so}",
                busy * 100.0
            )
        } else if self.server.is_some_and(|cores| cores >= SATURATED) {
            format!(
                "the server: it used {server} while the machine had CPU to spare, so one of its \
                 tasks (a broker, say) is likely the limit"
            )
        } else if let Rate::PerSecond(rate) = rate {
            format!("the senders' fixed rate ({rate} msg/s each): nothing was saturated")
        } else {
            "the in-flight window: nothing was saturated, so the senders waited for deliveries \
             (a larger --window may go faster)"
                .to_string()
        };
        let named = bound.contains("other processes");
        if let Some(others) = disturbed.filter(|_| !named) {
            bound.push_str(&format!(
                "; other processes used {others:.2} cores meanwhile, which disturbs these figures"
            ));
        }
        Verdict {
            generator_saturated,
            bound,
            others,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::Stamp;

    /// Expected counts every connected reading client but the sender; lost is what is missing.
    #[test]
    fn expected_excludes_the_sender_and_lost_is_the_difference() {
        let mut total = Tally::new(2, None);
        for seq in 0..10 {
            total.record(stamp(0, seq), 1);
        }
        total.record(stamp(1, 1), 1);
        total.record(stamp(1, 0), 1);
        let figures = per_sender(&[5, 1], 3, &total);
        assert_eq!(
            (figures[0].expected, figures[0].delivered, figures[0].lost),
            (10, 10, 0),
            "5 messages to 2 other clients, all there"
        );
        assert_eq!(
            (
                figures[1].expected,
                figures[1].delivered,
                figures[1].lost,
                figures[1].out_of_order
            ),
            (2, 2, 0, 1),
            "one message of sender 1 came late"
        );
        let short = per_sender(&[6, 1], 3, &total);
        assert_eq!(short[0].lost, 2, "6 messages to 2 clients, 10 arrived");
    }

    fn stamp(sender: u32, seq: u64) -> Stamp {
        Stamp {
            sender,
            seq,
            sent_at_us: 0,
        }
    }

    /// CPU figures of a two-core machine.
    fn cpu(server: f64, generator: f64, threads: usize, busy: f64) -> Cpu {
        Cpu {
            server: Some(server),
            generator,
            threads,
            machine_busy: Some(busy),
            cores: 2,
        }
    }

    /// A generator using (nearly) all the cores its threads can use is called saturated.
    #[test]
    fn a_busy_generator_is_saturated() {
        let verdict = cpu(0.2, 0.95, 1, 0.6).bound(true, Rate::Max);
        assert!(verdict.generator_saturated, "{verdict:?}");
        assert!(verdict.bound.starts_with("the generator"), "{verdict:?}");
    }

    /// A full machine is named before the server or the scenario.
    #[test]
    fn a_full_machine_bounds_the_run() {
        let verdict = cpu(1.0, 0.9, 64, 0.97).bound(true, Rate::Max);
        assert!(!verdict.generator_saturated, "{verdict:?}");
        assert!(
            verdict.bound.starts_with("the machine's CPU"),
            "{verdict:?}"
        );
    }

    /// A server at a full core while the machine idles is the bound.
    #[test]
    fn a_server_at_a_full_core_bounds_the_run() {
        let verdict = cpu(0.97, 0.2, 64, 0.3).bound(true, Rate::Max);
        assert!(verdict.bound.starts_with("the server"), "{verdict:?}");
    }

    /// When nothing is saturated, the scenario's own rate or window is the bound.
    #[test]
    fn otherwise_the_scenario_bounds_the_run() {
        let fixed = cpu(0.1, 0.1, 64, 0.2).bound(true, Rate::PerSecond(100.0));
        assert!(fixed.bound.contains("fixed rate"), "{fixed:?}");
        let window = cpu(0.1, 0.1, 64, 0.2).bound(true, Rate::Max);
        assert!(window.bound.contains("window"), "{window:?}");
        let idle = cpu(0.1, 0.1, 64, 0.2).bound(false, Rate::Max);
        assert!(idle.bound.contains("no messages"), "{idle:?}");
    }

    /// CPU used by neither server nor generator is reported, and said to disturb the figures.
    #[test]
    fn other_processes_are_named_when_they_use_the_cpu() {
        let busy = cpu(0.5, 0.5, 2, 1.0).bound(true, Rate::Max);
        let others = busy.others.expect("the machine was sampled");
        assert!(
            (others - 1.0).abs() < 1e-9,
            "2 cores busy, 1 by us: {others}"
        );
        assert!(
            busy.bound.contains("other processes 1.00 cores")
                && busy.bound.contains("lower than a quiet machine"),
            "{busy:?}"
        );
        let spare = cpu(0.3, 0.3, 2, 0.8).bound(true, Rate::PerSecond(10.0));
        assert!(
            spare.bound.contains("other processes used 1.00 cores"),
            "{spare:?}"
        );
        let quiet = cpu(0.5, 0.5, 2, 0.55).bound(true, Rate::Max);
        assert!(!quiet.bound.contains("other processes"), "{quiet:?}");
    }
}
