//! Compressed sparse rows: the follower × item interaction matrix.

use crate::RecommendError;

/// A sparse matrix in CSR layout with `f32` values; column indices within a row are sorted
/// and unique.
#[derive(Debug, Clone, PartialEq)]
pub struct CsrMatrix {
    rows: usize,
    cols: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    data: Vec<f32>,
}

impl CsrMatrix {
    /// Builds a `rows × cols` matrix from `(row, col, value)` triplets; duplicates are summed
    /// (several reads of one article add up to a stronger signal).
    pub fn from_triplets(
        rows: usize,
        cols: usize,
        triplets: &[(u32, u32, f32)],
    ) -> Result<Self, RecommendError> {
        if cols > u32::MAX as usize {
            return Err(RecommendError::InvalidConfig(format!("{cols} columns")));
        }
        let mut counts = vec![0usize; rows + 1];
        for &(r, c, v) in triplets {
            let (r, c) = (r as usize, c as usize);
            if r >= rows || c >= cols {
                return Err(RecommendError::OutOfBounds {
                    row: r,
                    col: c,
                    rows,
                    cols,
                });
            }
            if !v.is_finite() || v < 0.0 {
                return Err(RecommendError::BadStrength(v));
            }
            counts[r + 1] += 1;
        }
        for r in 0..rows {
            counts[r + 1] += counts[r];
        }
        // Counting sort by row, then sort each row by column and merge duplicates.
        let mut next = counts.clone();
        let mut cells = vec![(0u32, 0f32); triplets.len()];
        for &(r, c, v) in triplets {
            let slot = &mut next[r as usize];
            cells[*slot] = (c, v);
            *slot += 1;
        }
        let mut indptr = Vec::with_capacity(rows + 1);
        let mut indices = Vec::with_capacity(triplets.len());
        let mut data = Vec::with_capacity(triplets.len());
        indptr.push(0);
        for r in 0..rows {
            let row = &mut cells[counts[r]..counts[r + 1]];
            row.sort_unstable_by_key(|&(c, _)| c);
            for &(c, v) in row.iter() {
                if indices.len() > *indptr.last().unwrap_or(&0) && indices.last() == Some(&c) {
                    if let Some(last) = data.last_mut() {
                        *last += v;
                    }
                } else {
                    indices.push(c);
                    data.push(v);
                }
            }
            indptr.push(indices.len());
        }
        Ok(Self {
            rows,
            cols,
            indptr,
            indices,
            data,
        })
    }

    /// A `rows × cols` matrix with no cells.
    pub fn empty(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            indptr: vec![0; rows + 1],
            indices: Vec::new(),
            data: Vec::new(),
        }
    }

    /// Number of rows (followers).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (items).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Number of stored cells.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Column indices and values of row `r` (empty when out of range).
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        if r >= self.rows {
            return (&[], &[]);
        }
        let (a, b) = (self.indptr[r], self.indptr[r + 1]);
        (&self.indices[a..b], &self.data[a..b])
    }

    /// The value at `(r, c)`, zero when absent.
    pub fn get(&self, r: usize, c: u32) -> f32 {
        let (idx, val) = self.row(r);
        idx.binary_search(&c).map(|k| val[k]).unwrap_or(0.0)
    }

    /// Number of stored cells in each column (for items: how many followers consumed it).
    pub fn col_counts(&self) -> Vec<usize> {
        let mut counts = vec![0usize; self.cols];
        for &c in &self.indices {
            counts[c as usize] += 1;
        }
        counts
    }

    /// The transpose (items × followers), also with sorted rows.
    pub fn transpose(&self) -> Self {
        let mut indptr = vec![0usize; self.cols + 1];
        for &c in &self.indices {
            indptr[c as usize + 1] += 1;
        }
        for c in 0..self.cols {
            indptr[c + 1] += indptr[c];
        }
        let mut next = indptr.clone();
        let mut indices = vec![0u32; self.nnz()];
        let mut data = vec![0f32; self.nnz()];
        // Rows are visited in increasing order, so each transposed row comes out sorted.
        for r in 0..self.rows {
            let (idx, val) = self.row(r);
            for (&c, &v) in idx.iter().zip(val) {
                let slot = &mut next[c as usize];
                indices[*slot] = r as u32;
                data[*slot] = v;
                *slot += 1;
            }
        }
        Self {
            rows: self.cols,
            cols: self.rows,
            indptr,
            indices,
            data,
        }
    }

    /// The same sparsity pattern with every value replaced by `f(row, col, value)`.
    pub fn map_values(&self, mut f: impl FnMut(usize, u32, f32) -> f32) -> Self {
        let mut out = self.clone();
        for r in 0..self.rows {
            for k in self.indptr[r]..self.indptr[r + 1] {
                out.data[k] = f(r, self.indices[k], self.data[k]);
            }
        }
        out
    }

    /// Every stored cell as `(row, col, value)`, row-major.
    pub fn triplets(&self) -> Vec<(u32, u32, f32)> {
        let mut out = Vec::with_capacity(self.nnz());
        for r in 0..self.rows {
            let (idx, val) = self.row(r);
            out.extend(idx.iter().zip(val).map(|(&c, &v)| (r as u32, c, v)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_summed_and_rows_sorted() {
        let m =
            CsrMatrix::from_triplets(2, 3, &[(1, 2, 1.0), (0, 1, 2.0), (1, 0, 1.0), (1, 2, 0.5)])
                .unwrap();
        assert_eq!(m.nnz(), 3);
        assert_eq!(m.row(0), (&[1u32][..], &[2.0f32][..]));
        assert_eq!(m.row(1), (&[0u32, 2][..], &[1.0f32, 1.5][..]));
        assert_eq!(m.get(1, 2), 1.5);
        assert_eq!(m.get(0, 0), 0.0);
        assert_eq!(m.col_counts(), vec![1, 1, 1]);
    }

    #[test]
    fn transpose_swaps_and_round_trips() {
        let m = CsrMatrix::from_triplets(3, 2, &[(0, 1, 1.0), (2, 1, 3.0), (1, 0, 2.0)]).unwrap();
        let t = m.transpose();
        assert_eq!((t.rows(), t.cols()), (2, 3));
        assert_eq!(t.row(1), (&[0u32, 2][..], &[1.0f32, 3.0][..]));
        assert_eq!(t.transpose(), m);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(matches!(
            CsrMatrix::from_triplets(1, 1, &[(0, 1, 1.0)]),
            Err(RecommendError::OutOfBounds { col: 1, .. })
        ));
        assert_eq!(
            CsrMatrix::from_triplets(1, 1, &[(0, 0, -1.0)]),
            Err(RecommendError::BadStrength(-1.0))
        );
        assert!(CsrMatrix::from_triplets(1, 1, &[(0, 0, f32::NAN)]).is_err());
    }
}
