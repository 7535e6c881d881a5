//! A small deterministic generator (xorshift) for the unit tests that compare two computations
//! over random rows, so that the comparison needs no crate and every run sees the same rows.

pub(crate) struct Random(pub(crate) u64);

impl Random {
    /// The next number, below `n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
