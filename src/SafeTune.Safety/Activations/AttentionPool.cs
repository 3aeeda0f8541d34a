namespace SafeTune.Safety.Activations;

/// <summary>
/// Attention-weighted pooling over a prompt's tokens: each token's feature row h_t gets the score q·h_t from a learned
/// query q, the scores' softmax over the prompt's tokens weighs the rows, and the pooled vector is the weighted sum. A zero
/// query weighs every token equally (mean pooling). Arithmetic in double, so the result does not depend on the batch.
/// </summary>
public static class AttentionPool
{
    /// <summary>
    /// The softmax weights of <paramref name="count"/> token rows of <paramref name="query"/>.Length features each,
    /// stored row after row in <paramref name="tokens"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The sizes disagree or there is no token.</exception>
    public static double[] Weights(ReadOnlySpan<float> tokens, int count, ReadOnlySpan<float> query)
    {
        int f = query.Length;
        if (count < 1) throw new ArgumentException("attention pooling needs at least one token.", nameof(count));
        if (f == 0 || tokens.Length < (long)count * f)
            throw new ArgumentException($"expected {count} token rows of {f} features, got {tokens.Length} values.", nameof(tokens));
        var w = new double[count];
        double max = double.NegativeInfinity;
        for (int t = 0; t < count; t++)
        {
            var row = tokens.Slice(t * f, f);
            double s = 0;
            for (int j = 0; j < f; j++) s += (double)query[j] * row[j];
            w[t] = s;
            if (s > max) max = s;
        }
        double sum = 0;
        for (int t = 0; t < count; t++) sum += w[t] = Math.Exp(w[t] - max);
        for (int t = 0; t < count; t++) w[t] /= sum;
        return w;
    }

    /// <summary>Adds the attention-pooled vector of the token rows (see <see cref="Weights"/>) to <paramref name="pooled"/>.</summary>
    /// <exception cref="ArgumentException">The sizes disagree or there is no token.</exception>
    public static void Apply(ReadOnlySpan<float> tokens, int count, ReadOnlySpan<float> query, Span<double> pooled)
    {
        int f = query.Length;
        if (pooled.Length != f) throw new ArgumentException($"the pooled vector has {pooled.Length} values, not {f}.", nameof(pooled));
        var w = Weights(tokens, count, query);
        for (int t = 0; t < count; t++)
        {
            var row = tokens.Slice(t * f, f);
            for (int j = 0; j < f; j++) pooled[j] += w[t] * row[j];
        }
    }

    /// <summary>The attention-pooled vector of a prompt's token rows (<paramref name="query"/>.Length features each), in float.</summary>
    /// <exception cref="ArgumentException">The sizes disagree or there is no token.</exception>
    public static float[] Pool(ReadOnlySpan<float> tokens, ReadOnlySpan<float> query)
    {
        if (query.Length == 0 || tokens.Length % query.Length != 0)
            throw new ArgumentException($"{tokens.Length} values are not whole token rows of {query.Length} features.", nameof(tokens));
        var pooled = new double[query.Length];
        Apply(tokens, tokens.Length / query.Length, query, pooled);
        var result = new float[pooled.Length];
        for (int j = 0; j < result.Length; j++) result[j] = (float)pooled[j];
        return result;
    }
}
