//! Chips the generator can build for, with load addresses esptool 5.6 classifies as intended.
//!
//! Deliberately its own table (not `esp_image::Chip`): the generator is an independent oracle
//! for the validator, so it must not share the validator's idea of the format.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Esp32,
    Esp32s2,
    Esp32c3,
    Esp32s3,
    Esp32c2,
    Esp32c6,
    Esp32h2,
    Esp32p4,
    Esp32c61,
    Esp32c5,
    Esp32h21,
    Esp32h4,
}

/// `(name, chip id, DROM, DRAM, IRAM)`. DROM is the start of esptool's DROM map plus 0x20, so
/// the first segment's data (at file offset 0x20) is aligned to its MMU page as ESP-IDF does;
/// DRAM and IRAM are inside the chip's DRAM and IRAM ranges in esptool's `MEMORY_MAP`.
type Row = (&'static str, u16, u32, u32, u32);

impl Target {
    pub const ALL: [Target; 12] = [
        Target::Esp32,
        Target::Esp32s2,
        Target::Esp32c3,
        Target::Esp32s3,
        Target::Esp32c2,
        Target::Esp32c6,
        Target::Esp32h2,
        Target::Esp32p4,
        Target::Esp32c61,
        Target::Esp32c5,
        Target::Esp32h21,
        Target::Esp32h4,
    ];

    fn row(self) -> Row {
        match self {
            Target::Esp32 => ("esp32", 0x00, 0x3F40_0020, 0x3FFB_0000, 0x4008_0000),
            Target::Esp32s2 => ("esp32s2", 0x02, 0x3F00_0020, 0x3FFB_0000, 0x4002_0000),
            Target::Esp32c3 => ("esp32c3", 0x05, 0x3C00_0020, 0x3FC8_8000, 0x4038_0000),
            Target::Esp32s3 => ("esp32s3", 0x09, 0x3C00_0020, 0x3FC8_8000, 0x4037_4000),
            Target::Esp32c2 => ("esp32c2", 0x0C, 0x3C00_0020, 0x3FCA_0000, 0x4038_0000),
            Target::Esp32c6 => ("esp32c6", 0x0D, 0x4280_0020, 0x4081_0000, 0x4080_0000),
            Target::Esp32h2 => ("esp32h2", 0x10, 0x4280_0020, 0x4081_0000, 0x4080_0000),
            Target::Esp32p4 => ("esp32p4", 0x12, 0x4000_0020, 0x4FF1_0000, 0x4FF0_0000),
            Target::Esp32c61 => ("esp32c61", 0x14, 0x4280_0020, 0x4081_0000, 0x4080_0000),
            Target::Esp32c5 => ("esp32c5", 0x17, 0x4200_0020, 0x4081_0000, 0x4080_0000),
            Target::Esp32h21 => ("esp32h21", 0x19, 0x4200_0020, 0x4081_0000, 0x4080_0000),
            Target::Esp32h4 => ("esp32h4", 0x1C, 0x4200_0020, 0x4082_0000, 0x4081_0000),
        }
    }

    pub fn name(self) -> &'static str {
        self.row().0
    }

    pub fn chip_id(self) -> u16 {
        self.row().1
    }

    pub fn drom_addr(self) -> u32 {
        self.row().2
    }

    pub fn dram_addr(self) -> u32 {
        self.row().3
    }

    pub fn iram_addr(self) -> u32 {
        self.row().4
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.to_ascii_lowercase().replace('-', "");
        Target::ALL
            .into_iter()
            .find(|t| t.name() == wanted)
            .ok_or_else(|| {
                let names: Vec<_> = Target::ALL.iter().map(|t| t.name()).collect();
                format!("unknown chip {s:?}; one of {}", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in Target::ALL {
            assert_eq!(t.name().parse::<Target>(), Ok(t));
        }
        assert_eq!("ESP32-C3".parse::<Target>(), Ok(Target::Esp32c3));
        assert!("esp8266".parse::<Target>().is_err());
    }

    #[test]
    fn drom_data_is_page_aligned_like_idf() {
        for t in Target::ALL {
            assert_eq!(t.drom_addr() % 0x1_0000, 0x20, "{t}");
        }
    }
}
