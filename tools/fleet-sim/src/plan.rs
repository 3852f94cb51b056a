//! The fleet, decided from the seed alone: device ids, which devices fail or roll back, and the
//! order they start in. A small generator of our own (splitmix64) rather than `rand`, so that a
//! seed means the same fleet whatever version of `rand` the lock file holds.

use serde::Serialize;

/// What a device is scripted to do with the update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    /// Downloads, verifies, installs, boots and confirms the new image.
    Update,
    /// Aborts the download half way and reports `failed`.
    Fail,
    /// Installs, boots the new image, fails to confirm it and reports `rolled_back`.
    RollBack,
}

#[derive(Debug, Clone)]
pub struct SimDevice {
    pub id: String,
    pub fate: Fate,
}

/// Devices in the order they start.
pub struct FleetPlan {
    pub devices: Vec<SimDevice>,
}

struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0); the modulo bias is irrelevant for shuffling a fleet.
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).expect("below n")
    }
}

fn shuffle<T>(items: &mut [T], rng: &mut SplitMix64) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i + 1));
    }
}

/// round(n × rate) for a rate in 0..=1 (the command line checks it): 0 to n.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // 0 to n, as said above
fn share_of(n: usize, rate: f64) -> usize {
    ((n as f64) * rate).round() as usize
}

impl FleetPlan {
    /// `n` devices named `sim-00000`...; exactly round(n × rate) fail and round(n × rate) roll
    /// back, chosen by the seed, so counts can be asserted exactly.
    pub fn new(n: usize, failure_rate: f64, rollback_rate: f64, seed: u64) -> FleetPlan {
        let mut rng = SplitMix64(seed);
        let width = n.saturating_sub(1).to_string().len().max(5);
        let failing = share_of(n, failure_rate);
        let rolling_back = share_of(n, rollback_rate).min(n - failing);
        let mut fates: Vec<Fate> = (0..n)
            .map(|i| match i {
                i if i < failing => Fate::Fail,
                i if i < failing + rolling_back => Fate::RollBack,
                _ => Fate::Update,
            })
            .collect();
        shuffle(&mut fates, &mut rng);
        let mut devices: Vec<SimDevice> = fates
            .into_iter()
            .enumerate()
            .map(|(i, fate)| SimDevice {
                id: format!("sim-{i:0width$}"),
                fate,
            })
            .collect();
        shuffle(&mut devices, &mut rng);
        FleetPlan { devices }
    }

    pub fn count(&self, fate: Fate) -> usize {
        self.devices.iter().filter(|d| d.fate == fate).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_counts_and_same_fleet_for_a_seed() {
        let a = FleetPlan::new(1000, 0.01, 0.005, 7);
        assert_eq!(a.count(Fate::Fail), 10);
        assert_eq!(a.count(Fate::RollBack), 5);
        assert_eq!(a.count(Fate::Update), 985);
        let b = FleetPlan::new(1000, 0.01, 0.005, 7);
        let ids = |p: &FleetPlan| -> Vec<(String, Fate)> {
            p.devices.iter().map(|d| (d.id.clone(), d.fate)).collect()
        };
        assert_eq!(ids(&a), ids(&b));
        let c = FleetPlan::new(1000, 0.01, 0.005, 8);
        assert_ne!(ids(&a), ids(&c));
    }

    #[test]
    fn rates_that_round_to_everyone() {
        let p = FleetPlan::new(3, 1.0, 1.0, 1);
        assert_eq!(p.count(Fate::Fail), 3);
        assert_eq!(p.count(Fate::RollBack), 0);
    }
}
