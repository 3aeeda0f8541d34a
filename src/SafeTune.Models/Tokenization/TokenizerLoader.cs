using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;
using SafeTune.Onnx;

namespace SafeTune.Models.Tokenization;

/// <summary>
/// Loads a <see cref="TextTokenizer"/> from a Hub model folder or tokenizer file, or from a tiktoken encoding name.
/// </summary>
/// <remarks>
/// Recognised specs: a folder (searched for <c>tokenizer.json</c>, then <c>vocab.json</c> + <c>merges.txt</c>, then
/// <c>tokenizer.model</c>, then <c>vocab.txt</c>); a <c>tokenizer.json</c> with a BPE model (byte-level or SentencePiece-style,
/// run by SafeTune's own tokenizer.json pipeline, <see cref="Hub.HubTokenizer"/>) or a WordPiece model; a
/// <c>vocab.json</c> (with <c>merges.txt</c> beside it); a SentencePiece <c>*.model</c>; a WordPiece <c>vocab.txt</c>;
/// or a tiktoken name (<c>gpt2</c>; <c>r50k_base</c>, <c>p50k_base</c>, <c>cl100k_base</c>, <c>o200k_base</c> need their
/// Microsoft.ML.Tokenizers.Data package, of which only Gpt2's is referenced). Special tokens come from the tokenizer file
/// and from <c>tokenizer_config.json</c> / <c>generation_config.json</c> beside it.
/// </remarks>
public static class TokenizerLoader
{
    /// <summary>The GPT-2 pre-tokenization pattern (contractions, letters, digits, other symbols, whitespace).</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private static readonly string[] TiktokenNames = ["gpt2", "r50k_base", "p50k_base", "p50k_edit", "cl100k_base", "o200k_base"];

    /// <summary>Loads a tokenizer from <paramref name="spec"/> (see the remarks on <see cref="TokenizerLoader"/>).</summary>
    /// <exception cref="FileNotFoundException">The spec is neither an existing path nor a tiktoken name, or a needed file is missing.</exception>
    /// <exception cref="InvalidDataException">A file is malformed or of an unsupported kind; the message names it.</exception>
    public static TextTokenizer Load(string spec, TokenizerLoadOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(spec);
        options ??= new TokenizerLoadOptions();

        if (Directory.Exists(spec)) return LoadFolder(Path.GetFullPath(spec), options);
        if (File.Exists(spec)) return LoadFile(Path.GetFullPath(spec), options);
        if (TiktokenNames.Contains(spec, StringComparer.OrdinalIgnoreCase)) return LoadTiktoken(spec.ToLowerInvariant());
        throw new FileNotFoundException(
            $"tokenizer '{spec}' not found: not a file, not a folder, and not a tiktoken encoding name ({string.Join(", ", TiktokenNames)}).", spec);
    }

    /// <summary>
    /// The files <see cref="Load"/> reads for <paramref name="spec"/>, and the files beside them that the chat template and
    /// the context length are taken from: the tokenizer file (with <c>vocab.json</c> / <c>merges.txt</c> as a pair),
    /// <c>tokenizer_config.json</c>, <c>generation_config.json</c>, <c>chat_template.jinja</c> and <c>chat_template.json</c>
    /// where they exist. Full paths, in that order; empty for a tiktoken name (its data is built in).
    /// </summary>
    public static IReadOnlyList<string> Files(string spec)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(spec);
        string? primary = null;
        if (Directory.Exists(spec))
            primary = new[] { "tokenizer.json", "vocab.json", "tokenizer.model", "vocab.txt" }.Select(n => Path.Combine(Path.GetFullPath(spec), n)).FirstOrDefault(File.Exists);
        else if (File.Exists(spec)) primary = Path.GetFullPath(spec);
        if (primary is null) return [];
        var dir = Path.GetDirectoryName(primary)!;
        var files = new List<string> { primary };
        var name0 = Path.GetFileName(primary).ToLowerInvariant();
        bool pair = name0 is "vocab.json" or "merges.txt" || (name0.EndsWith(".json", StringComparison.Ordinal) && name0 != "tokenizer.json");
        foreach (var name in new[] { "vocab.json", "merges.txt", "tokenizer_config.json", "generation_config.json", "chat_template.jinja", "chat_template.json" })
        {
            if (!pair && name is "vocab.json" or "merges.txt") continue;
            var path = Path.Combine(dir, name);
            if (File.Exists(path) && !files.Contains(path, StringComparer.Ordinal)) files.Add(path);
        }
        return files;
    }

    private static TextTokenizer LoadFolder(string dir, TokenizerLoadOptions options)
    {
        foreach (var name in new[] { "tokenizer.json", "vocab.json", "tokenizer.model", "vocab.txt" })
        {
            var path = Path.Combine(dir, name);
            if (File.Exists(path)) return LoadFile(path, options);
        }
        throw new FileNotFoundException(
            $"no tokenizer in folder '{dir}': expected tokenizer.json, vocab.json + merges.txt, tokenizer.model or vocab.txt.", dir);
    }

    private static TextTokenizer LoadFile(string path, TokenizerLoadOptions options)
    {
        var name = Path.GetFileName(path).ToLowerInvariant();
        var dir = Path.GetDirectoryName(path)!;
        var config = options.ReadConfigFiles ? ReadConfig(dir) : new HubConfig();

        if (name == "vocab.json" || (name.EndsWith(".json", StringComparison.Ordinal) && File.Exists(Path.Combine(dir, "merges.txt")) && !LooksLikeTokenizerJson(path)))
            return LoadVocabMerges(path, Path.Combine(dir, "merges.txt"), config);
        if (name.EndsWith(".json", StringComparison.Ordinal)) return LoadTokenizerJson(path, config, options);
        if (name.EndsWith(".model", StringComparison.Ordinal)) return LoadSentencePiece(path, config);
        if (name.EndsWith(".txt", StringComparison.Ordinal) && name != "merges.txt") return LoadWordPiece(path, config, options);
        if (name == "merges.txt") return LoadVocabMerges(Path.Combine(dir, "vocab.json"), path, config);
        throw new InvalidDataException(
            $"unknown tokenizer format: '{path}' (expected tokenizer.json, vocab.json + merges.txt, tokenizer.model or vocab.txt).");
    }

    // ---- tiktoken ----------------------------------------------------------------------------------------------

    private static TextTokenizer LoadTiktoken(string name)
    {
        TiktokenTokenizer tk;
        try
        {
            tk = name == "gpt2" ? TiktokenTokenizer.CreateForModel("gpt2") : TiktokenTokenizer.CreateForEncoding(name);
        }
        catch (InvalidOperationException e)
        {
            throw new InvalidDataException($"tiktoken encoding '{name}' is unavailable: {e.Message}", e);
        }
        var specials = tk.SpecialTokens ?? new Dictionary<string, int>();
        var size = specials.Count == 0 ? 0 : specials.Values.Max() + 1;
        var set = new SpecialTokenSet();
        if (specials.ContainsKey("<|endoftext|>")) set.EosToken = set.BosToken = "<|endoftext|>";
        return new TextTokenizer(tk, TokenizerKind.Tiktoken, name, size, specials, specials, set);
    }

    // ---- byte-level BPE --------------------------------------------------------------------------------------

    private static bool LooksLikeTokenizerJson(string path)
    {
        try
        {
            using var doc = ParseJson(path);
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("model", out _);
        }
        catch (InvalidDataException)
        {
            return false;
        }
    }

    private static TextTokenizer LoadTokenizerJson(string path, HubConfig config, TokenizerLoadOptions options)
    {
        using var doc = ParseJson(path);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"'{path}' is not a Hub tokenizer.json: no \"model\" object.");

        var type = model.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
        if (type is null && model.TryGetProperty("merges", out _)) type = "BPE";

        switch (type)
        {
            case "BPE":
                return LoadHubBpe(root, path, config);
            case "WordPiece":
            {
                var vocab = ReadVocab(model.TryGetProperty("vocab", out var v) ? v : default, path);
                var lines = new string[vocab.Count == 0 ? 0 : vocab.Values.Max() + 1];
                foreach (var (token, id) in vocab) lines[id] = token;
                var lower = options.LowerCase ?? config.DoLowerCase ?? FindLowercase(root) ?? true;
                var text = string.Join('\n', lines.Select(l => l ?? "[unused]"));
                using var stream = new MemoryStream(Encoding.UTF8.GetBytes(text));
                return CreateWordPiece(stream, vocab, lower, path, config);
            }
            default:
                throw new InvalidDataException($"'{path}': unsupported tokenizer model type '{type ?? "(none)"}' (supported: BPE, WordPiece).");
        }
    }

    /// <summary>A tokenizer.json BPE (byte-level or SentencePiece-style), run by <see cref="Hub.HubTokenizer"/>.</summary>
    private static TextTokenizer LoadHubBpe(JsonElement root, string path, HubConfig config)
    {
        JsonElement? tokenizerConfig = null;
        JsonDocument? configDoc = null;
        var configPath = Path.Combine(Path.GetDirectoryName(path)!, "tokenizer_config.json");
        try
        {
            if (File.Exists(configPath))
            {
                configDoc = ParseJson(configPath);
                tokenizerConfig = configDoc.RootElement;
            }
            var hub = new Hub.HubTokenizer(root, path, tokenizerConfig);
            var specials = new Dictionary<string, int>(hub.SpecialTokenIds, StringComparer.Ordinal);
            foreach (var (token, id) in config.AddedTokens)
                if (config.SpecialAddedTokens.Contains(token)) specials.TryAdd(token, id);
            var kind = IsByteLevel(root) ? TokenizerKind.ByteLevelBpe : TokenizerKind.SentencePiece;
            return new TextTokenizer(hub, kind, path, specials, config.Special());
        }
        finally
        {
            configDoc?.Dispose();
        }
    }

    private static TextTokenizer LoadVocabMerges(string vocabPath, string mergesPath, HubConfig config)
    {
        if (!File.Exists(vocabPath)) throw new FileNotFoundException($"BPE vocabulary '{vocabPath}' not found.", vocabPath);
        if (!File.Exists(mergesPath)) throw new FileNotFoundException($"BPE merges file '{mergesPath}' (beside '{vocabPath}') not found.", mergesPath);
        using var doc = ParseJson(vocabPath);
        var vocab = ReadVocab(doc.RootElement, vocabPath);
        var merges = new List<string>();
        foreach (var line in File.ReadLines(mergesPath))
        {
            if (line.Length == 0 || line.StartsWith("#version", StringComparison.Ordinal)) continue;
            if (line.Split(' ').Length != 2) throw new InvalidDataException($"'{mergesPath}': malformed merge line '{line}' (expected two tokens).");
            merges.Add(line);
        }
        var added = new Dictionary<string, int>(config.AddedTokens, StringComparer.Ordinal);
        return CreateByteLevel(vocab, merges, added, Gpt2Pattern, vocabPath, config);
    }

    private static TextTokenizer CreateByteLevel(
        Dictionary<string, int> vocab, List<string> merges, Dictionary<string, int> added, string pattern, string source, HubConfig config)
    {
        Regex regex;
        try
        {
            regex = new Regex(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"'{source}': pre-tokenizer pattern is not a valid regular expression: {e.Message}", e);
        }
        IReadOnlyDictionary<string, int>? specials = added.Count > 0 ? added : null;
        var bpeOptions = new BpeOptions(vocab)
        {
            Merges = merges,
            ByteLevel = true,
            PreTokenizer = new RegexPreTokenizer(regex, specials),
            SpecialTokens = specials,
        };
        BpeTokenizer bpe;
        try
        {
            bpe = BpeTokenizer.Create(bpeOptions);
        }
        catch (Exception e) when (e is ArgumentException or UserInputException or InvalidOperationException or FormatException or KeyNotFoundException)
        {
            throw new InvalidDataException($"'{source}': cannot build a byte-level BPE tokenizer: {e.Message}", e);
        }
        var size = Math.Max(vocab.Count == 0 ? 0 : vocab.Values.Max() + 1, added.Count == 0 ? 0 : added.Values.Max() + 1);
        return new TextTokenizer(bpe, TokenizerKind.ByteLevelBpe, source, size, vocab, added, config.Special());
    }

    private static bool IsByteLevel(JsonElement root)
    {
        foreach (var key in new[] { "pre_tokenizer", "decoder" })
            if (root.TryGetProperty(key, out var e) && ContainsType(e, "ByteLevel")) return true;
        return false;
    }

    private static bool ContainsType(JsonElement e, string type)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var p in e.EnumerateObject())
                {
                    if (p.Name == "type" && p.Value.ValueKind == JsonValueKind.String && p.Value.GetString() == type) return true;
                    if (ContainsType(p.Value, type)) return true;
                }
                return false;
            case JsonValueKind.Array:
                foreach (var x in e.EnumerateArray())
                    if (ContainsType(x, type)) return true;
                return false;
            default:
                return false;
        }
    }

    private static bool? FindLowercase(JsonElement root)
    {
        if (!root.TryGetProperty("normalizer", out var n) || n.ValueKind != JsonValueKind.Object) return null;
        if (n.TryGetProperty("lowercase", out var l) && l.ValueKind is JsonValueKind.True or JsonValueKind.False) return l.GetBoolean();
        return ContainsType(n, "Lowercase") ? true : null;
    }

    private static Dictionary<string, int> ReadVocab(JsonElement vocab, string path)
    {
        if (vocab.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"'{path}': the vocabulary must be a JSON object of token → id.");
        var result = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var p in vocab.EnumerateObject())
        {
            if (!p.Value.TryGetInt32(out var id) || id < 0)
                throw new InvalidDataException($"'{path}': vocabulary entry '{p.Name}' has no valid id.");
            result[p.Name] = id;
        }
        return result;
    }

    // ---- SentencePiece ---------------------------------------------------------------------------------------

    private static TextTokenizer LoadSentencePiece(string path, HubConfig config)
    {
        SentencePieceTokenizer sp;
        using var stream = File.OpenRead(path);
        try
        {
            sp = LlamaTokenizer.Create(stream, addBeginOfSentence: false, addEndOfSentence: false,
                specialTokens: config.AddedTokens.Count > 0 ? config.AddedTokens : null);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Malformed protobuf surfaces as an IOException subclass, unsupported models as argument errors.
            throw new InvalidDataException($"'{path}' is not a valid SentencePiece BPE model: {e.Message}", e);
        }
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (token, id) in sp.Vocabulary) ids.TryAdd(token, id);
        var specials = new Dictionary<string, int>(StringComparer.Ordinal);
        if (sp.SpecialTokens is not null) foreach (var (token, id) in sp.SpecialTokens) specials[token] = id;
        specials.TryAdd(sp.BeginningOfSentenceToken, sp.BeginningOfSentenceId);
        specials.TryAdd(sp.EndOfSentenceToken, sp.EndOfSentenceId);
        var size = Math.Max(ids.Values.DefaultIfEmpty(-1).Max(), specials.Values.DefaultIfEmpty(-1).Max()) + 1;
        var set = config.Special();
        if (set.BosToken is null && set.BosId is null) set.BosToken = sp.BeginningOfSentenceToken;
        if (set.EosToken is null && set.EosId is null) set.EosToken = sp.EndOfSentenceToken;
        return new TextTokenizer(sp, TokenizerKind.SentencePiece, path, size, ids, specials, set);
    }

    // ---- WordPiece -------------------------------------------------------------------------------------------

    private static TextTokenizer LoadWordPiece(string path, HubConfig config, TokenizerLoadOptions options)
    {
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        var n = 0;
        foreach (var line in File.ReadLines(path))
        {
            var token = line.TrimEnd('\r');
            vocab.TryAdd(token, n++);
        }
        if (vocab.Count == 0) throw new InvalidDataException($"'{path}': empty WordPiece vocabulary.");
        var lower = options.LowerCase ?? config.DoLowerCase ?? true;
        using var stream = File.OpenRead(path);
        return CreateWordPiece(stream, vocab, lower, path, config);
    }

    private static TextTokenizer CreateWordPiece(Stream vocabStream, Dictionary<string, int> vocab, bool lowerCase, string source, HubConfig config)
    {
        foreach (var required in new[] { "[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]" })
            if (!vocab.ContainsKey(required))
                throw new InvalidDataException($"'{source}': WordPiece vocabulary lacks the BERT token {required}.");
        BertTokenizer bert;
        try
        {
            // Hugging Face's BERT strips accents whenever it lower-cases, unless strip_accents says otherwise.
            bert = BertTokenizer.Create(vocabStream, new BertOptions { LowerCaseBeforeTokenization = lowerCase, RemoveNonSpacingMarks = config.StripAccents ?? lowerCase });
        }
        catch (Exception e) when (e is ArgumentException or UserInputException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"'{source}': cannot build a WordPiece tokenizer: {e.Message}", e);
        }
        var specials = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var s in new[] { "[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]" }) specials[s] = vocab[s];
        foreach (var (token, id) in config.AddedTokens) specials.TryAdd(token, id);
        var set = config.Special();
        set.BosToken ??= config.ClsToken ?? "[CLS]";
        set.EosToken ??= config.SepToken ?? "[SEP]";
        set.PadToken ??= "[PAD]";
        return new TextTokenizer(bert, TokenizerKind.WordPiece, source, vocab.Values.Max() + 1, vocab, specials, set);
    }

    // ---- config files ----------------------------------------------------------------------------------------

    private static HubConfig ReadConfig(string dir)
    {
        var config = new HubConfig();
        var tokenizerConfig = Path.Combine(dir, "tokenizer_config.json");
        if (File.Exists(tokenizerConfig))
        {
            using var doc = ParseJson(tokenizerConfig);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"'{tokenizerConfig}': expected a JSON object.");
            config.BosToken = TokenString(root, "bos_token");
            config.EosToken = TokenString(root, "eos_token");
            config.PadToken = TokenString(root, "pad_token");
            config.ClsToken = TokenString(root, "cls_token");
            config.SepToken = TokenString(root, "sep_token");
            if (root.TryGetProperty("do_lower_case", out var lc) && lc.ValueKind is JsonValueKind.True or JsonValueKind.False)
                config.DoLowerCase = lc.GetBoolean();
            if (root.TryGetProperty("strip_accents", out var sa) && sa.ValueKind is JsonValueKind.True or JsonValueKind.False)
                config.StripAccents = sa.GetBoolean();
            if (root.TryGetProperty("added_tokens_decoder", out var decoder) && decoder.ValueKind == JsonValueKind.Object)
            {
                foreach (var p in decoder.EnumerateObject())
                {
                    if (int.TryParse(p.Name, out var id) && p.Value.ValueKind == JsonValueKind.Object
                        && p.Value.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String)
                    {
                        config.AddedTokens[c.GetString()!] = id;
                        if (!p.Value.TryGetProperty("special", out var sp) || sp.ValueKind != JsonValueKind.False)
                            config.SpecialAddedTokens.Add(c.GetString()!);
                    }
                }
            }
        }

        var generationConfig = Path.Combine(dir, "generation_config.json");
        if (File.Exists(generationConfig))
        {
            using var doc = ParseJson(generationConfig);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"'{generationConfig}': expected a JSON object.");
            config.BosIds = TokenIds(root, "bos_token_id");
            config.EosIds = TokenIds(root, "eos_token_id");
            config.PadIds = TokenIds(root, "pad_token_id");
        }
        return config;
    }

    private static string? TokenString(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var e)) return null;
        return e.ValueKind switch
        {
            JsonValueKind.String => e.GetString(),
            JsonValueKind.Object when e.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String => c.GetString(),
            _ => null,
        };
    }

    private static List<int> TokenIds(JsonElement root, string name)
    {
        var ids = new List<int>();
        if (!root.TryGetProperty(name, out var e)) return ids;
        if (e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out var one)) ids.Add(one);
        else if (e.ValueKind == JsonValueKind.Array)
            foreach (var x in e.EnumerateArray())
                if (x.ValueKind == JsonValueKind.Number && x.TryGetInt32(out var id)) ids.Add(id);
        return ids;
    }

    private static JsonDocument ParseJson(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"'{path}' not found.", path);
        try
        {
            using var stream = File.OpenRead(path);
            return JsonDocument.Parse(stream, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{path}' is not valid JSON: {e.Message}", e);
        }
    }

    private sealed class HubConfig
    {
        public string? BosToken { get; set; }
        public string? EosToken { get; set; }
        public string? PadToken { get; set; }
        public string? ClsToken { get; set; }
        public string? SepToken { get; set; }
        public bool? DoLowerCase { get; set; }
        public bool? StripAccents { get; set; }
        public Dictionary<string, int> AddedTokens { get; } = new(StringComparer.Ordinal);
        public HashSet<string> SpecialAddedTokens { get; } = new(StringComparer.Ordinal);
        public List<int> BosIds { get; set; } = [];
        public List<int> EosIds { get; set; } = [];
        public List<int> PadIds { get; set; } = [];

        public SpecialTokenSet Special()
        {
            var set = new SpecialTokenSet
            {
                BosToken = BosToken,
                BosId = BosIds.Count > 0 ? BosIds[0] : null,
                EosToken = EosToken,
                EosId = EosIds.Count > 0 ? EosIds[0] : null,
                PadToken = PadToken,
                PadId = PadIds.Count > 0 ? PadIds[0] : null,
            };
            set.ExtraEosIds.AddRange(EosIds);
            return set;
        }
    }
}
