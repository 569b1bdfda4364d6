//! Input normalisation, exactly as transformers' `Wav2Vec2FeatureExtractor(do_normalize=True)`.

/// `(x - mean) / sqrt(var + eps)` over the whole utterance (population variance), written into `out`.
///
/// Sums run in f64: an utterance is up to ~10⁶ samples and f32 accumulation would drift from numpy's
/// pairwise summation by more than the parity tolerance.
pub fn normalize_into(samples: &[f32], eps: f64, out: &mut Vec<f32>) {
    out.clear();
    if samples.is_empty() {
        return;
    }
    let n = samples.len() as f64;
    let mean = samples.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = samples
        .iter()
        .map(|&x| (x as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    let inv_std = 1.0 / (var + eps).sqrt();
    out.extend(
        samples
            .iter()
            .map(|&x| ((x as f64 - mean) * inv_std) as f32),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_mean_unit_variance() {
        let x: Vec<f32> = (0..1000)
            .map(|i| 0.3 + 0.1 * ((i as f32) * 0.37).sin())
            .collect();
        let mut y = Vec::new();
        normalize_into(&x, 1e-7, &mut y);
        let mean = y.iter().map(|&v| v as f64).sum::<f64>() / y.len() as f64;
        let var = y.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / y.len() as f64;
        assert!(mean.abs() < 1e-6, "{mean}");
        assert!((var - 1.0).abs() < 1e-4, "{var}");
    }

    #[test]
    fn silence_stays_finite() {
        let mut y = Vec::new();
        normalize_into(&[0.0; 480], 1e-7, &mut y);
        assert!(y.iter().all(|v| *v == 0.0));
        normalize_into(&[0.25; 480], 1e-7, &mut y);
        assert!(y.iter().all(|v| v.is_finite() && v.abs() < 1e-3));
    }
}
