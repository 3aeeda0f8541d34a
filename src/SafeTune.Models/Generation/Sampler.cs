namespace SafeTune.Models.Generation;

/// <summary>Picks tokens from logits: greedy at temperature 0, else seeded sampling with optional nucleus (top-p) truncation.</summary>
internal sealed class Sampler(GenerationOptions options)
{
    private readonly Random _random = new(options.Seed);
    private double[] _probs = [];
    private int[] _order = [];

    /// <summary>The next token for one row's last-position logits.</summary>
    public int Next(ReadOnlySpan<float> logits)
    {
        if (options.Temperature == 0) return ArgMax(logits);
        int n = logits.Length;
        if (_probs.Length != n) (_probs, _order) = (new double[n], new int[n]);
        float max = logits[ArgMax(logits)];
        double total = 0;
        for (int i = 0; i < n; i++) total += _probs[i] = Math.Exp((logits[i] - (double)max) / options.Temperature);
        int kept = n;
        if (options.TopP < 1)
        {
            // The most likely tokens (ties by lower id) until their mass reaches top-p; at least one.
            for (int i = 0; i < n; i++) _order[i] = i;
            var probs = _probs;
            Array.Sort(_order, (a, b) => probs[a] != probs[b] ? probs[b].CompareTo(probs[a]) : a.CompareTo(b));
            double mass = 0;
            for (kept = 0; kept < n;)
            {
                mass += probs[_order[kept++]];
                if (mass >= options.TopP * total) break;
            }
            total = mass;
        }
        else for (int i = 0; i < n; i++) _order[i] = i;
        double u = _random.NextDouble() * total, acc = 0;
        for (int k = 0; k < kept; k++)
        {
            acc += _probs[_order[k]];
            if (u < acc) return _order[k];
        }
        return _order[kept - 1];
    }

    private static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }
}
