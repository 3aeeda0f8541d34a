using SafeTune.Models.Decoders;
using SafeTune.Runtime.Training;

namespace SafeTune.Benchmarks;

/// <summary>The benchmark batch: seeded random token ids for <see cref="LlamaConfig.Bench"/>, labels = next token, last -100.</summary>
internal static class BenchBatch
{
    public static TokenBatch Create(int batch = 8, int sequence = 128, int seed = 1)
    {
        var rng = new Random(seed);
        var ids = Enumerable.Range(0, batch * sequence).Select(_ => (long)rng.Next(LlamaConfig.Bench.VocabSize)).ToArray();
        return new TokenBatch(ids, [.. ids.Skip(1).Append(-100L)], null, batch, sequence);
    }
}
