//! A small deterministic random number generator (SplitMix64): the same seed gives the same
//! scenario on every machine, which is what makes a failing seed a regression test.

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// An independent generator for a part of the scenario (a connection, a session), so
    /// that what one part draws does not shift what another gets.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next())
    }

    /// An independent generator that draws nothing from this one: for choices added to the
    /// simulation later (BDAT), so every draw the existing seeds were made of stays in place.
    pub fn sibling(&self) -> Rng {
        Rng::new(self.0 ^ 0xD1B5_4A32_D192_ED03)
    }

    /// Another independent generator that draws nothing from this one, told apart from
    /// [`Rng::sibling`] (and from each other) by `part`: for choices added later still.
    pub fn sibling_for(&self, part: u64) -> Rng {
        Rng::new(self.0 ^ 0x5851_F42D_4C95_7F2D ^ part.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
}
