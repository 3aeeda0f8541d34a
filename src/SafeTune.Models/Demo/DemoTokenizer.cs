using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using SafeTune.Models.Tokenization;

namespace SafeTune.Models.Demo;

/// <summary>
/// Trains the demo model's tokenizer: a byte-level BPE (GPT-2 byte alphabet and pre-tokenization) whose vocabulary is
/// the 256 byte symbols plus merges learned from a text corpus, with the ChatML special tokens <c>&lt;|endoftext|&gt;</c>
/// (end of sequence and padding), <c>&lt;|im_start|&gt;</c> and <c>&lt;|im_end|&gt;</c> after them. Written as a Hub-format
/// <c>tokenizer.json</c> (with <c>tokenizer_config.json</c> and <c>generation_config.json</c>) that
/// <see cref="TokenizerLoader.Load(string, TokenizerLoadOptions?)"/> reads.
/// </summary>
public static class DemoTokenizer
{
    /// <summary>End of sequence and padding.</summary>
    public const string EndOfText = "<|endoftext|>";
    /// <summary>ChatML turn start.</summary>
    public const string ImStart = "<|im_start|>";
    /// <summary>ChatML turn end.</summary>
    public const string ImEnd = "<|im_end|>";

    private static readonly Regex Pretokenize = new(TokenizerLoader.Gpt2Pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant);

    /// <summary>
    /// Learns up to <paramref name="merges"/> merges from <paramref name="corpus"/> (most frequent adjacent pair first; ties
    /// broken by ordinal order, so the result is deterministic; stops early when no pair occurs twice). Returns the merges
    /// as <c>"a b"</c> strings in byte-level symbols.
    /// </summary>
    public static IReadOnlyList<string> LearnMerges(IEnumerable<string> corpus, int merges)
    {
        ArgumentNullException.ThrowIfNull(corpus);
        ArgumentOutOfRangeException.ThrowIfNegative(merges);
        var byteChar = ByteToUnicode();
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var text in corpus)
            foreach (Match m in Pretokenize.Matches(text))
            {
                var word = string.Concat(Encoding.UTF8.GetBytes(m.Value).Select(b => byteChar[b]));
                counts[word] = counts.GetValueOrDefault(word) + 1;
            }
        var words = counts.OrderBy(p => p.Key, StringComparer.Ordinal)
            .Select(p => (Symbols: p.Key.Select(c => c.ToString()).ToList(), Count: p.Value)).ToList();
        var result = new List<string>();
        var pairs = new Dictionary<(string, string), long>();
        while (result.Count < merges)
        {
            pairs.Clear();
            foreach (var (symbols, count) in words)
                for (int i = 0; i + 1 < symbols.Count; i++)
                {
                    var key = (symbols[i], symbols[i + 1]);
                    pairs[key] = pairs.GetValueOrDefault(key) + count;
                }
            (string A, string B) best = default;
            long bestCount = 0;
            foreach (var (pair, count) in pairs)
            {
                if (count < 2 || count < bestCount) continue;
                if (count == bestCount)
                {
                    int c = string.CompareOrdinal(pair.Item1, best.A);
                    if (c > 0 || (c == 0 && string.CompareOrdinal(pair.Item2, best.B) >= 0)) continue;
                }
                (best, bestCount) = (pair, count);
            }
            if (best.A is null) break;
            result.Add(best.A + " " + best.B);
            var merged = best.A + best.B;
            foreach (var (symbols, _) in words)
                for (int i = 0; i + 1 < symbols.Count; i++)
                    if (symbols[i] == best.A && symbols[i + 1] == best.B)
                    {
                        symbols[i] = merged;
                        symbols.RemoveAt(i + 1);
                    }
        }
        return result;
    }

    /// <summary>
    /// Writes <c>tokenizer.json</c>, <c>tokenizer_config.json</c> (ChatML chat template, end-of-sequence and padding token)
    /// and <c>generation_config.json</c> (stop on <c>&lt;|im_end|&gt;</c> and <c>&lt;|endoftext|&gt;</c>) into
    /// <paramref name="directory"/>. Returns the path of <c>tokenizer.json</c>.
    /// </summary>
    public static string Write(string directory, IReadOnlyList<string> merges)
    {
        ArgumentNullException.ThrowIfNull(merges);
        Directory.CreateDirectory(directory);
        var byteChar = ByteToUnicode();
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int b = 0; b < 256; b++) vocab[byteChar[b].ToString()] = b;
        foreach (var m in merges)
        {
            var parts = m.Split(' ');
            vocab.TryAdd(parts[0] + parts[1], vocab.Count);
        }
        int eot = vocab.Count, start = eot + 1, end = eot + 2;
        var options = new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

        var path = Path.Combine(directory, "tokenizer.json");
        WriteJson(path, options, w =>
        {
            w.WriteStartObject();
            w.WriteString("version", "1.0");
            w.WriteNull("truncation");
            w.WriteNull("padding");
            w.WriteStartArray("added_tokens");
            foreach (var (content, id) in new[] { (EndOfText, eot), (ImStart, start), (ImEnd, end) })
            {
                w.WriteStartObject();
                w.WriteNumber("id", id);
                w.WriteString("content", content);
                w.WriteBoolean("single_word", false);
                w.WriteBoolean("lstrip", false);
                w.WriteBoolean("rstrip", false);
                w.WriteBoolean("normalized", false);
                w.WriteBoolean("special", true);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteNull("normalizer");
            w.WriteStartObject("pre_tokenizer");
            w.WriteString("type", "ByteLevel");
            w.WriteBoolean("add_prefix_space", false);
            w.WriteBoolean("trim_offsets", true);
            w.WriteBoolean("use_regex", true);
            w.WriteEndObject();
            w.WriteNull("post_processor");
            w.WriteStartObject("decoder");
            w.WriteString("type", "ByteLevel");
            w.WriteBoolean("add_prefix_space", false);
            w.WriteBoolean("trim_offsets", true);
            w.WriteBoolean("use_regex", true);
            w.WriteEndObject();
            w.WriteStartObject("model");
            w.WriteString("type", "BPE");
            w.WriteNull("dropout");
            w.WriteNull("unk_token");
            w.WriteNull("continuing_subword_prefix");
            w.WriteNull("end_of_word_suffix");
            w.WriteBoolean("fuse_unk", false);
            w.WriteBoolean("byte_fallback", false);
            w.WriteStartObject("vocab");
            foreach (var (token, id) in vocab) w.WriteNumber(token, id);
            w.WriteEndObject();
            w.WriteStartArray("merges");
            foreach (var m in merges) w.WriteStringValue(m);
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndObject();
        });
        WriteJson(Path.Combine(directory, "tokenizer_config.json"), options, w =>
        {
            w.WriteStartObject();
            w.WriteString("eos_token", EndOfText);
            w.WriteString("pad_token", EndOfText);
            // Decoding gives back exactly the text (Hugging Face would otherwise remove spaces before punctuation).
            w.WriteBoolean("clean_up_tokenization_spaces", false);
            w.WriteString("chat_template",
                "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}");
            w.WriteEndObject();
        });
        WriteJson(Path.Combine(directory, "generation_config.json"), options, w =>
        {
            w.WriteStartObject();
            w.WriteStartArray("eos_token_id");
            w.WriteNumberValue(end);
            w.WriteNumberValue(eot);
            w.WriteEndArray();
            w.WriteNumber("pad_token_id", eot);
            w.WriteEndObject();
        });
        return path;
    }

    private static void WriteJson(string path, JsonWriterOptions options, Action<Utf8JsonWriter> write)
    {
        using var stream = File.Create(path);
        using var w = new Utf8JsonWriter(stream, options);
        write(w);
    }

    /// <summary>GPT-2's byte-to-character table: printable bytes map to themselves, the others to U+0100 onwards.</summary>
    private static char[] ByteToUnicode()
    {
        var table = new char[256];
        int n = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            table[b] = printable ? (char)b : (char)(256 + n++);
        }
        return table;
    }
}
