//! The ESP32-family targets an app image can be built for.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A target chip, as named by the image header's chip id (docs/esp-image.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Chip {
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

/// A half-open address range `[start, end)`.
type Range = (u32, u32);

/// Per-chip facts the validator needs; one row per chip keeps them in step.
struct ChipFacts {
    id: u16,
    name: &'static str,
    /// Secure Boot V2 schemes the ROM can verify (docs/esp-image.md §4 "Schemes"; esp32h21 and
    /// esp32h4 are not in that list and follow their `soc_caps.h`, which sets both).
    rsa: bool,
    ecdsa: bool,
    /// Address windows the bootloader maps from flash through the MMU (IROM and DROM).
    mapped: &'static [Range],
    /// `None` when the MMU page is fixed at 64 KB; otherwise the smallest page the chip can be
    /// configured with, used when the app description does not say which one it uses.
    min_configurable_page: Option<u32>,
}

const KB: u32 = 1024;

impl Chip {
    pub const ALL: [Chip; 12] = [
        Chip::Esp32,
        Chip::Esp32s2,
        Chip::Esp32c3,
        Chip::Esp32s3,
        Chip::Esp32c2,
        Chip::Esp32c6,
        Chip::Esp32h2,
        Chip::Esp32p4,
        Chip::Esp32c61,
        Chip::Esp32c5,
        Chip::Esp32h21,
        Chip::Esp32h4,
    ];

    fn facts(self) -> ChipFacts {
        // Mapped windows are esptool 5.6's IROM_MAP/DROM_MAP bounds (or the wider DROM
        // window of its MEMORY_MAP where the two disagree).
        match self {
            Chip::Esp32 => ChipFacts {
                id: 0x0000,
                name: "esp32",
                rsa: true,
                ecdsa: false,
                mapped: &[(0x3F40_0000, 0x3F80_0000), (0x400D_0000, 0x4040_0000)],
                min_configurable_page: None,
            },
            Chip::Esp32s2 => ChipFacts {
                id: 0x0002,
                name: "esp32s2",
                rsa: true,
                ecdsa: false,
                mapped: &[(0x3F00_0000, 0x3FF8_0000), (0x4008_0000, 0x4080_0000)],
                min_configurable_page: None,
            },
            Chip::Esp32c3 => ChipFacts {
                id: 0x0005,
                name: "esp32c3",
                rsa: true,
                ecdsa: false,
                mapped: &[(0x3C00_0000, 0x3C80_0000), (0x4200_0000, 0x4280_0000)],
                min_configurable_page: None,
            },
            Chip::Esp32s3 => ChipFacts {
                id: 0x0009,
                name: "esp32s3",
                rsa: true,
                ecdsa: false,
                mapped: &[(0x3C00_0000, 0x3E00_0000), (0x4200_0000, 0x4400_0000)],
                min_configurable_page: None,
            },
            Chip::Esp32c2 => ChipFacts {
                id: 0x000C,
                name: "esp32c2",
                rsa: false,
                ecdsa: true,
                mapped: &[(0x3C00_0000, 0x3C40_0000), (0x4200_0000, 0x4240_0000)],
                min_configurable_page: Some(16 * KB),
            },
            Chip::Esp32c6 => ChipFacts {
                id: 0x000D,
                name: "esp32c6",
                rsa: true,
                ecdsa: true,
                mapped: &[(0x4200_0000, 0x4300_0000)],
                min_configurable_page: Some(8 * KB),
            },
            Chip::Esp32h2 => ChipFacts {
                id: 0x0010,
                name: "esp32h2",
                rsa: true,
                ecdsa: true,
                mapped: &[(0x4200_0000, 0x4300_0000)],
                min_configurable_page: Some(8 * KB),
            },
            Chip::Esp32p4 => ChipFacts {
                id: 0x0012,
                name: "esp32p4",
                rsa: true,
                ecdsa: true,
                mapped: &[(0x4000_0000, 0x4C00_0000)],
                min_configurable_page: Some(8 * KB),
            },
            Chip::Esp32c61 => ChipFacts {
                id: 0x0014,
                name: "esp32c61",
                rsa: false,
                ecdsa: true,
                mapped: &[(0x4200_0000, 0x4400_0000)],
                min_configurable_page: Some(8 * KB),
            },
            Chip::Esp32c5 => ChipFacts {
                id: 0x0017,
                name: "esp32c5",
                rsa: true,
                ecdsa: true,
                mapped: &[(0x4200_0000, 0x4400_0000)],
                min_configurable_page: Some(8 * KB),
            },
            Chip::Esp32h21 => ChipFacts {
                id: 0x0019,
                name: "esp32h21",
                rsa: true,
                ecdsa: true,
                mapped: &[(0x4200_0000, 0x4300_0000)],
                min_configurable_page: Some(8 * KB),
            },
            Chip::Esp32h4 => ChipFacts {
                id: 0x001C,
                name: "esp32h4",
                rsa: true,
                ecdsa: true,
                mapped: &[(0x4200_0000, 0x4400_0000)],
                min_configurable_page: Some(8 * KB),
            },
        }
    }

    pub fn from_id(id: u16) -> Option<Chip> {
        Chip::ALL.into_iter().find(|c| c.id() == id)
    }

    pub fn id(self) -> u16 {
        self.facts().id
    }

    /// The lowercase name esptool and ESP-IDF use, e.g. `"esp32c3"`.
    pub fn name(self) -> &'static str {
        self.facts().name
    }

    /// Accepts the canonical name in any case, and esptool's spellings with dashes
    /// (`ESP32-C3`), since users copy names from either.
    pub fn from_name(name: &str) -> Option<Chip> {
        let normalized: String = name
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        Chip::ALL.into_iter().find(|c| c.name() == normalized)
    }

    /// Whether the ROM of this chip can verify RSA-3072 Secure Boot V2 signatures.
    pub fn supports_rsa_signatures(self) -> bool {
        self.facts().rsa
    }

    /// Whether the ROM of this chip can verify ECDSA Secure Boot V2 signatures.
    pub fn supports_ecdsa_signatures(self) -> bool {
        self.facts().ecdsa
    }

    /// Whether `addr` lies in a window the bootloader maps from flash, where a segment's file
    /// offset must be congruent to its load address modulo the MMU page size.
    pub fn is_flash_mapped(self, addr: u32) -> bool {
        self.facts()
            .mapped
            .iter()
            .any(|&(start, end)| (start..end).contains(&addr))
    }

    /// The MMU page size the bootloader will map this app with. `declared_log2` is the app
    /// description's `mmu_page_size` (0 in images older than ESP-IDF 5.4). When the chip's
    /// page size is configurable and the image does not say, the smallest possible page is
    /// returned: checking alignment against it can only miss problems, never invent them.
    pub fn mmu_page_size(self, declared_log2: u8) -> u32 {
        match self.facts().min_configurable_page {
            None => 64 * KB,
            Some(min) => match declared_log2 {
                13..=16 => 1 << declared_log2,
                _ => min,
            },
        }
    }
}

impl fmt::Display for Chip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_round_trip() {
        for chip in Chip::ALL {
            assert_eq!(Chip::from_id(chip.id()), Some(chip));
            assert_eq!(Chip::from_name(chip.name()), Some(chip));
            assert_eq!(chip.to_string(), chip.name());
        }
    }

    #[test]
    fn ids_match_the_spec_table() {
        let expected = [
            ("esp32", 0x0000),
            ("esp32s2", 0x0002),
            ("esp32c3", 0x0005),
            ("esp32s3", 0x0009),
            ("esp32c2", 0x000C),
            ("esp32c6", 0x000D),
            ("esp32h2", 0x0010),
            ("esp32p4", 0x0012),
            ("esp32c61", 0x0014),
            ("esp32c5", 0x0017),
            ("esp32h21", 0x0019),
            ("esp32h4", 0x001C),
        ];
        for (name, id) in expected {
            assert_eq!(Chip::from_name(name).map(Chip::id), Some(id), "{name}");
        }
        assert_eq!(Chip::from_id(0xFFFF), None);
        assert_eq!(Chip::from_id(0x0001), None);
    }

    #[test]
    fn names_are_forgiving_about_case_and_dashes() {
        assert_eq!(Chip::from_name("ESP32-C3"), Some(Chip::Esp32c3));
        assert_eq!(Chip::from_name("esp32_h21"), Some(Chip::Esp32h21));
        assert_eq!(Chip::from_name("esp8266"), None);
        assert_eq!(Chip::from_name(""), None);
    }

    #[test]
    fn serde_uses_the_lowercase_name() {
        for chip in Chip::ALL {
            let json = serde_json::to_string(&chip).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", chip.name()));
            let back: Option<Chip> = serde_json::from_str(&json).ok();
            assert_eq!(back, Some(chip));
        }
    }

    #[test]
    fn signature_schemes_follow_the_spec() {
        let rsa_only = [Chip::Esp32, Chip::Esp32s2, Chip::Esp32s3, Chip::Esp32c3];
        let ecdsa_only = [Chip::Esp32c2, Chip::Esp32c61];
        for chip in Chip::ALL {
            let rsa = chip.supports_rsa_signatures();
            let ecdsa = chip.supports_ecdsa_signatures();
            if rsa_only.contains(&chip) {
                assert!(rsa && !ecdsa, "{chip}");
            } else if ecdsa_only.contains(&chip) {
                assert!(!rsa && ecdsa, "{chip}");
            } else {
                assert!(rsa && ecdsa, "{chip}");
            }
        }
    }

    #[test]
    fn mmu_page_size_uses_declared_size_only_where_configurable() {
        assert_eq!(Chip::Esp32c3.mmu_page_size(13), 65536);
        assert_eq!(Chip::Esp32c6.mmu_page_size(15), 32768);
        assert_eq!(Chip::Esp32c6.mmu_page_size(0), 8192);
        assert_eq!(Chip::Esp32c2.mmu_page_size(0), 16384);
        assert_eq!(Chip::Esp32c2.mmu_page_size(40), 16384);
    }

    #[test]
    fn flash_mapped_windows() {
        assert!(Chip::Esp32c3.is_flash_mapped(0x3C00_0020));
        assert!(!Chip::Esp32c3.is_flash_mapped(0x3FC8_8000));
        assert!(Chip::Esp32.is_flash_mapped(0x400D_0018));
        assert!(!Chip::Esp32.is_flash_mapped(0x4008_0000));
        assert!(!Chip::Esp32c6.is_flash_mapped(0));
    }
}
