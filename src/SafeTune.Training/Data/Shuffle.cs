namespace SafeTune.Training.Data;

/// <summary>
/// Deterministic shuffles from SplitMix64, written out here so that the order depends on the seed alone, never on the
/// runtime's random number generator: a data order is reproducible on any machine and .NET version.
/// </summary>
internal static class Shuffle
{
    /// <summary>A well-mixed 64-bit value of two inputs (the SplitMix64 finaliser of their combination).</summary>
    public static ulong Mix(ulong a, ulong b) => Finalise(a * 0x9E3779B97F4A7C15UL + Finalise(b + 0x632BE59BD9B4E019UL));

    /// <summary>A Fisher-Yates permutation of 0..n-1 drawn from the SplitMix64 stream of <paramref name="seed"/>.</summary>
    public static int[] Permutation(int n, ulong seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        var a = new int[n];
        for (int i = 0; i < n; i++) a[i] = i;
        ulong state = seed;
        for (int i = n - 1; i > 0; i--)
        {
            state += 0x9E3779B97F4A7C15UL;
            int j = (int)((Finalise(state) >> 11) % (ulong)(i + 1)); // 53 random bits; modulo bias below 2^-33 for any n here
            (a[i], a[j]) = (a[j], a[i]);
        }
        return a;
    }

    private static ulong Finalise(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
