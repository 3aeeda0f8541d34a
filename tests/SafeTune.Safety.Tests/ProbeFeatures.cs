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

    /// <summary>
    /// Per-layer pooled MiniLM features of every prompt, cached under artifacts/ per prompt (a store of SHA-256 of the
    /// prompt text and its row, one file per pooling): a prompt already in the store is read, the others go through MiniLM
    /// and are appended, so editing the project's prompt lists recomputes only the new prompts.
    /// </summary>
    public static Dictionary<string, float[]> PerLayer(List<string> prompts, ActivationPooling pooling, Action<string> log)
    {
        var store = Path.Combine(Repo.Root, "artifacts", "probe-study-cache", $"{pooling}-{MiniLm.ModelBytes.Length}.rows");
        int width = MiniLm.Layers * MiniLm.Width, record = 32 + width * 4;
        var known = new Dictionary<string, float[]>(StringComparer.Ordinal);
        if (File.Exists(store))
        {
            var bytes = File.ReadAllBytes(store);
            for (long at = 0; at + record <= bytes.LongLength; at += record)
            {
                var row = new float[width];
                Buffer.BlockCopy(bytes, (int)at + 32, row, 0, width * 4);
                known[Convert.ToHexString(bytes, (int)at, 32)] = row;
            }
        }
        static string Key(string prompt) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(prompt)));
        var missing = prompts.Where(q => !known.ContainsKey(Key(q))).Distinct(StringComparer.Ordinal).ToList();
        log($"{pooling}: {prompts.Count - missing.Count} feature rows from the cache, {missing.Count} to compute");
        if (missing.Count > 0)
        {
            using var dir = new TempDir();
            var tokenizer = TokenizerLoader.Load(MiniLm.WriteVocab(dir.File("vocab.txt")));
            using var extractor = new ActivationExtractor(MiniLm.Load(), tokenizer, null, new ActivationOptions { Pooling = pooling, BatchSize = 32 });
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var rows = extractor.ExtractPerLayer(missing);
            log($"{pooling}: {missing.Count} prompts through MiniLM in {clock.Elapsed.TotalSeconds:F1} s");
            var bytes = new byte[(long)missing.Count * record];
            for (int i = 0; i < rows.Length; i++)
            {
                var key = Convert.FromHexString(Key(missing[i]));
                Buffer.BlockCopy(key, 0, bytes, i * record, 32);
                Buffer.BlockCopy(rows[i], 0, bytes, i * record + 32, width * 4);
                known[Key(missing[i])] = rows[i];
            }
            Directory.CreateDirectory(Path.GetDirectoryName(store)!);
            using var file = new FileStream(store, FileMode.Append, FileAccess.Write);
            file.Write(bytes);
        }
        return prompts.Distinct(StringComparer.Ordinal).ToDictionary(q => q, q => known[Key(q)]);
    }

    /// <summary>
    /// Every token's MiniLM hidden states of <paramref name="layers"/>, concatenated per token (what attention-weighted
    /// pooling reads), of every prompt; held in memory only (about 0.6 GB for the transfer study's prompts at two layers).
    /// </summary>
    public static Dictionary<string, float[]> TokenStates(List<string> prompts, int[] layers, Action<string> log)
    {
        var distinct = prompts.Distinct(StringComparer.Ordinal).ToList();
        using var dir = new TempDir();
        var tokenizer = TokenizerLoader.Load(MiniLm.WriteVocab(dir.File("vocab.txt")));
        using var extractor = new ActivationExtractor(MiniLm.Load(), tokenizer, null,
            new ActivationOptions { Pooling = ActivationPooling.AttentionWeighted, Layers = layers, BatchSize = 32 });
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var states = new float[distinct.Count][];
        extractor.ExtractTokenStates(distinct, (i, f) => states[i] = f);
        log($"token states of layers {string.Join(", ", layers)}: {distinct.Count} prompts through MiniLM in {clock.Elapsed.TotalSeconds:F1} s");
        return distinct.Select((q, i) => (q, i)).ToDictionary(x => x.q, x => states[x.i], StringComparer.Ordinal);
    }
}
