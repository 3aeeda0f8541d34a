namespace SafeTune.Models;

/// <summary>
/// Shuffles drawn from a seeded <see cref="Random"/>: the demo model's and the local judge's training orders and data
/// splits. Unlike the fine-tuning data order (SplitMix64, seed alone) these rest on .NET's seeded generator; they stay
/// on it because their recorded weights and figures were trained with these orders.
/// </summary>
public static class RandomOrder
{
    /// <summary>A Fisher-Yates permutation of 0..n-1, drawing <c>rng.Next(i + 1)</c> for i = n-1 down to 1.</summary>
    public static int[] Permutation(Random rng, int n)
    {
        ArgumentNullException.ThrowIfNull(rng);
        var a = Enumerable.Range(0, n).ToArray();
        for (int i = n - 1; i > 0; i--)
        {
            int j = rng.Next(i + 1);
            (a[i], a[j]) = (a[j], a[i]);
        }
        return a;
    }

    /// <summary>
    /// Indices 0..n-1 without end, epoch after epoch, each epoch a fresh <see cref="Permutation"/> drawn from
    /// <paramref name="seed"/>'s generator when the last one is used up: the rows of training batches.
    /// </summary>
    public static IEnumerator<int> Epochs(int seed, int n)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(n);
        var rng = new Random(seed);
        while (true)
            foreach (var i in Permutation(rng, n)) yield return i;
    }
}
