//! Newtype ids used across the Program: chains, rules, sets, counters, registers, instructions.

/// Index of a chain in `Program::chains`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainId(pub u32);

/// Index of a rule in `Program::rules` (global across chains).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(pub u32);

/// Index of a set or map in `Program::sets`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SetId(pub u32);

/// Index of a counter in the Program's counter table (and in `State::counters`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CounterId(pub u32);

/// Index of a token bucket (`limit`) in the Program's limit table (and in `State::limits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LimitId(pub u32);

/// Index of an instruction in `Program::insns`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InsnIdx(pub u32);

/// A 32-bit data register, 0..16 (`nft_regs.data[4 + n]`, uapi `NFT_REG32_00 + n`).
///
/// A value of N bytes occupies `ceil(N / 4)` consecutive registers starting here.
/// `Reg::uapi()` gives the number nft prints: `NFT_REG_1..4` (1..4) when the register is
/// 16-byte aligned (n % 4 == 0), `NFT_REG32_xx` (8 + n) otherwise — exactly like libnftnl's
/// output of what nft generated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reg(pub u8);

/// Number of 32-bit data registers (`NFT_REG32_COUNT`).
pub const NFT_REG32_COUNT: usize = 16;

impl Reg {
    /// The uapi register number as nft emits it (see the type docs).
    pub fn uapi(self) -> u32 {
        if self.0.is_multiple_of(4) {
            1 + u32::from(self.0) / 4
        } else {
            8 + u32::from(self.0)
        }
    }

    /// Map a uapi register number back (like `nft_parse_register`): 1..=4 → 0,4,8,12,
    /// 8..=23 → 0..=15. `NFT_REG_VERDICT` (0) and invalid numbers give `None`.
    pub fn from_uapi(n: u32) -> Option<Reg> {
        match n {
            1..=4 => Some(Reg(((n - 1) * 4) as u8)),
            8..=23 => Some(Reg((n - 8) as u8)),
            _ => None,
        }
    }

    /// Number of 32-bit registers a `len`-byte value occupies.
    pub fn words(len: usize) -> usize {
        len.div_ceil(4)
    }
}
