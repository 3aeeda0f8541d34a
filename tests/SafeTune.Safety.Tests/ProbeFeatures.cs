using System.Security.Cryptography;
using System.Text;
using SafeTune.Models.Tokenization;
using SafeTune.Safety.Activations;
using SafeTune.Safety.Data;
using SafeTune.Safety.Probes;
using SafeTune.TestSupport;

namespace SafeTune.Safety.Tests;

/// <summary>The MiniLM features the probe studies share: deduplicated prompt lists and cached per-layer activations.</summary>
internal static class ProbeFeatures
{
    /// <summary>The prompts, each normalised text once (the first kept).</summary>
    public static List<string> Unique(IEnumerable<string> prompts)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        return [.. prompts.Where(p => seen.Add(PromptText.Normalize(p)))];
    }

    /// <summary>Per-layer pooled MiniLM features of every prompt, cached under artifacts/ by a hash of the prompts.</summary>
    public static Dictionary<string, float[]> PerLayer(List<string> prompts, ActivationPooling pooling, Action<string> log)
    {
        var key = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(pooling + "\n" + string.Join("\n", prompts) + "\n" + MiniLm.ModelBytes.Length)))[..16];
        var cache = Path.Combine(Repo.Root, "artifacts", "probe-study-cache", $"{pooling}-{key}.bin");
        int width = MiniLm.Layers * MiniLm.Width;
        float[][] rows;
        if (File.Exists(cache) && new FileInfo(cache).Length == (long)prompts.Count * width * 4)
        {
            var bytes = File.ReadAllBytes(cache);
            rows = [.. Enumerable.Range(0, prompts.Count).Select(i => { var r = new float[width]; Buffer.BlockCopy(bytes, i * width * 4, r, 0, width * 4); return r; })];
            log($"{pooling}: {prompts.Count} feature rows from the cache");
        }
        else
        {
            using var dir = new TempDir();
            var tokenizer = TokenizerLoader.Load(MiniLm.WriteVocab(dir.File("vocab.txt")));
            using var extractor = new ActivationExtractor(MiniLm.Load(), tokenizer, null, new ActivationOptions { Pooling = pooling, BatchSize = 32 });
            var clock = System.Diagnostics.Stopwatch.StartNew();
            rows = extractor.ExtractPerLayer(prompts);
            log($"{pooling}: {prompts.Count} prompts through MiniLM in {clock.Elapsed.TotalSeconds:F1} s");
            var bytes = new byte[(long)prompts.Count * width * 4];
            for (int i = 0; i < rows.Length; i++) Buffer.BlockCopy(rows[i], 0, bytes, i * width * 4, width * 4);
            Directory.CreateDirectory(Path.GetDirectoryName(cache)!);
            File.WriteAllBytes(cache, bytes);
        }
        return prompts.Select((q, i) => (q, i)).ToDictionary(x => x.q, x => rows[x.i]);
    }
}
