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
    /// Reports a panic on its first check after booting the new release (--bad-release).
    pub crashes: bool,
    /// Never speaks again after reporting `downloading` (--silent).
    pub silent: bool,
}

/// Whether a device is among `percent` % of the fleet, by its id alone, so that the same
/// devices crash or go silent whatever the seed and the order they start in.
fn among(id: &str, salt: &str, percent: f64) -> bool {
    let mut h = SplitMix64(
        format!("{salt}:{id}")
            .bytes()
            .fold(0xCBF2_9CE4_8422_2325, |h: u64, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
            }),
    );
    #[allow(clippy::cast_precision_loss)] // below 10,000
    let bucket = (h.next() % 10_000) as f64;
    bucket < percent * 100.0
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
    /// `crash_percent` and `silent_percent` % of the devices crash on the new release and go
    /// silent (by id).
    pub fn new(
        n: usize,
        failure_rate: f64,
        rollback_rate: f64,
        seed: u64,
        crash_percent: f64,
        silent_percent: f64,
    ) -> FleetPlan {
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
            .map(|(i, fate)| {
                let id = format!("sim-{i:0width$}");
                SimDevice {
                    crashes: among(&id, "crash", crash_percent),
                    silent: among(&id, "silent", silent_percent),
                    id,
                    fate,
                }
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
        let a = FleetPlan::new(1000, 0.01, 0.005, 7, 0.0, 0.0);
        assert_eq!(a.count(Fate::Fail), 10);
        assert_eq!(a.count(Fate::RollBack), 5);
        assert_eq!(a.count(Fate::Update), 985);
        let b = FleetPlan::new(1000, 0.01, 0.005, 7, 0.0, 0.0);
        let ids = |p: &FleetPlan| -> Vec<(String, Fate)> {
            p.devices.iter().map(|d| (d.id.clone(), d.fate)).collect()
        };
        assert_eq!(ids(&a), ids(&b));
        let c = FleetPlan::new(1000, 0.01, 0.005, 8, 0.0, 0.0);
        assert_ne!(ids(&a), ids(&c));
    }

    #[test]
    fn rates_that_round_to_everyone() {
        let p = FleetPlan::new(3, 1.0, 1.0, 1, 0.0, 0.0);
        assert_eq!(p.count(Fate::Fail), 3);
        assert_eq!(p.count(Fate::RollBack), 0);
    }

    #[test]
    fn crashing_and_silent_devices_follow_the_id() {
        let a = FleetPlan::new(1000, 0.0, 0.0, 1, 30.0, 10.0);
        let b = FleetPlan::new(1000, 0.0, 0.0, 2, 30.0, 10.0);
        let of = |p: &FleetPlan| -> Vec<(String, bool, bool)> {
            let mut v: Vec<_> = p
                .devices
                .iter()
                .map(|d| (d.id.clone(), d.crashes, d.silent))
                .collect();
            v.sort();
            v
        };
        assert_eq!(of(&a), of(&b));
        let crashing = a.devices.iter().filter(|d| d.crashes).count();
        let silent = a.devices.iter().filter(|d| d.silent).count();
        assert!((250..350).contains(&crashing), "{crashing}");
        assert!((70..130).contains(&silent), "{silent}");
    }
}
