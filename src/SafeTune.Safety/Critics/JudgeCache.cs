using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using SafeTune.Onnx;

namespace SafeTune.Safety.Critics;

/// <summary>What <see cref="JudgeCache.TryGet"/> found.</summary>
public enum JudgeCacheLookup
{
    /// <summary>No entry for the key.</summary>
    Miss,
    /// <summary>A valid entry; its score is returned.</summary>
    Hit,
    /// <summary>An entry that cannot be read (torn, edited, wrong key or score); it is ignored and will be rewritten.</summary>
    Corrupt,
}

/// <summary>
/// An on-disk cache of judge scores, one small JSON file per (prompt format, judge model, prompt, response), named by
/// the SHA-256 of those four (<see cref="Key"/>) under a two-character fan-out folder: <c>DIR/3f/3fa4….json</c>
/// holding <c>{"format": "safetune-judge-cache/1", "key": …, "score": 4}</c> (a score in [1, 5], written so that it
/// reads back exactly). Entries are written to a temporary
/// file and renamed, so a kill never leaves a torn entry; an entry that is unreadable all the same is treated as a
/// miss, never as an error. Only scores are stored: no prompt, no answer text, no credential. Safe for concurrent use.
/// </summary>
public sealed class JudgeCache
{
    /// <summary>The entry format tag.</summary>
    public const string Format = "safetune-judge-cache/1";

    /// <summary>Uses (and creates on the first write) <paramref name="directory"/>.</summary>
    public JudgeCache(string directory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        Directory = Path.GetFullPath(directory);
    }

    /// <summary>The cache folder.</summary>
    public string Directory { get; }

    /// <summary>
    /// The key of an item: the lowercase hex SHA-256 of the UTF-8 JSON array
    /// <c>[promptFormat, model, prompt, response]</c> (JSON escaping keeps the fields apart).
    /// </summary>
    /// <param name="promptFormat">What the judge was shown, with its version (for the rubric: <see cref="HarmRubric.Version"/>).</param>
    /// <param name="model">The judge model.</param>
    /// <param name="item">The prompt and response.</param>
    public static string Key(string promptFormat, string model, JudgeItem item)
    {
        ArgumentNullException.ThrowIfNull(promptFormat);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(item);
        var json = JsonSerializer.SerializeToUtf8Bytes(new[] { promptFormat, model, item.Prompt, item.Response });
        return Convert.ToHexStringLower(SHA256.HashData(json));
    }

    /// <summary>The file of <paramref name="key"/>.</summary>
    public string PathOf(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (key.Length != 64 || !key.All(char.IsAsciiHexDigitLower)) throw new UserInputException($"'{key}' is not a cache key (64 lowercase hex digits).");
        return Path.Combine(Directory, key[..2], key + ".json");
    }

    /// <summary>Looks <paramref name="key"/> up; <paramref name="score"/> is set on a <see cref="JudgeCacheLookup.Hit"/>.</summary>
    public JudgeCacheLookup TryGet(string key, out double score)
    {
        score = 0;
        var path = PathOf(key);
        byte[] bytes;
        try
        {
            if (!File.Exists(path)) return JudgeCacheLookup.Miss;
            bytes = File.ReadAllBytes(path);
        }
        catch (FileNotFoundException) { return JudgeCacheLookup.Miss; }
        catch (DirectoryNotFoundException) { return JudgeCacheLookup.Miss; }
        catch (IOException) { return JudgeCacheLookup.Corrupt; }
        catch (UnauthorizedAccessException) { return JudgeCacheLookup.Corrupt; }
        try
        {
            using var doc = JsonDocument.Parse(bytes);
            var root = doc.RootElement;
            if (root.ValueKind == JsonValueKind.Object
                && root.TryGetProperty("format", out var f) && f.ValueKind == JsonValueKind.String && f.GetString() == Format
                && root.TryGetProperty("key", out var k) && k.ValueKind == JsonValueKind.String && k.GetString() == key
                && root.TryGetProperty("score", out var s) && s.ValueKind == JsonValueKind.Number && s.TryGetDouble(out var v)
                && v is >= JudgeVerdict.MinScore and <= JudgeVerdict.MaxScore)
            {
                score = v;
                return JudgeCacheLookup.Hit;
            }
        }
        catch (JsonException)
        {
        }
        return JudgeCacheLookup.Corrupt;
    }

    /// <summary>Stores <paramref name="score"/> (in [1, 5]) under <paramref name="key"/>, atomically.</summary>
    public void Put(string key, double score)
    {
        if (!(score is >= JudgeVerdict.MinScore and <= JudgeVerdict.MaxScore))
            throw new ArgumentOutOfRangeException(nameof(score), score, "a judge score lies in [1, 5].");
        var text = string.Create(CultureInfo.InvariantCulture, $"{{\"format\": \"{Format}\", \"key\": \"{key}\", \"score\": {score:R}}}\n");
        AtomicFile.WriteAllBytes(PathOf(key), Encoding.UTF8.GetBytes(text));
    }
}
