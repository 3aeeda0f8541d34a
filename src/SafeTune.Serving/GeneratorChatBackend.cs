using System.Globalization;
using SafeTune.Models.Chat;
using SafeTune.Models.Demo;
using SafeTune.Models.Generation;
using SafeTune.Models.Tokenization;
using SafeTune.Onnx;
using SafeTune.Runtime;

namespace SafeTune.Serving;

/// <summary>Settings of a <see cref="GeneratorChatBackend"/>.</summary>
public sealed record GeneratorBackendOptions
{
    /// <summary>The ONNX decoder (<c>input_ids</c> -> <c>logits</c>; a key/value-cache graph generates fastest).</summary>
    public required string ModelPath { get; init; }

    /// <summary>The tokenizer, as <see cref="TokenizerLoader.Load(string, TokenizerLoadOptions?)"/> takes it.</summary>
    public required string Tokenizer { get; init; }

    /// <summary>
    /// The chat template by name (chatml, llama3, phi3, plain); null to recognise it from the
    /// <c>tokenizer_config.json</c> beside the tokenizer (plain when there is none).
    /// </summary>
    public string? Template { get; init; }

    /// <summary>The model name served; null for the model file's name without its extension.</summary>
    public string? ModelId { get; init; }

    /// <summary>Tokens generated when a request gives no <c>max_tokens</c>.</summary>
    public int DefaultMaxTokens { get; init; } = 256;

    /// <summary>The most tokens any request may ask for.</summary>
    public int MaxTokensLimit { get; init; } = 4096;

    /// <summary>The temperature of requests that give none (0: greedy, so unattended evaluations are deterministic).</summary>
    public double DefaultTemperature { get; init; }

    /// <summary>
    /// The most prompt tokens a request may have (a longer one is answered with 400); null for the model's context length
    /// (<see cref="ContextLength.Of"/>), else <see cref="ContextLength.Default"/>. Generation stops at the same limit.
    /// </summary>
    public int? MaxPromptTokens { get; init; }

    /// <summary>ONNX Runtime settings (provider, threads). The CPU memory arena is always off, so that one long request
    /// cannot keep its memory for the life of the server.</summary>
    public SessionConfig? Runtime { get; init; }

    /// <summary>Settings for the demo model: its key/value-cache graph, tokenizer and template, 64 tokens by default.</summary>
    public static GeneratorBackendOptions ForDemo(DemoModelFiles demo)
    {
        ArgumentNullException.ThrowIfNull(demo);
        return new GeneratorBackendOptions
        {
            ModelPath = demo.KvCacheModelPath,
            Tokenizer = demo.TokenizerPath,
            Template = demo.Recipe.Tokenizer.ChatTemplate,
            ModelId = "safetune-demo",
            DefaultMaxTokens = 64,
            Runtime = new SessionConfig { IntraOpThreads = demo.Recipe.Training.Threads },
        };
    }
}

/// <summary>
/// Chat completions from an ONNX decoder: the conversation is rendered with the chat template, tokenized, and
/// continued with <see cref="Generator"/> (greedy at temperature 0, else sampling with the request's seed) until an
/// end-of-sequence or end-of-turn token, a stop text, or the token limit. Requests run one at a time.
/// </summary>
public sealed class GeneratorChatBackend : IChatBackend
{
    private readonly Generator _generator;
    private readonly TextTokenizer _tokenizer;
    private readonly ChatTemplate _template;
    private readonly GeneratorBackendOptions _options;
    private readonly int[] _endIds;
    private readonly int _pad;
    private readonly SemaphoreSlim _gate = new(1, 1);

    /// <summary>Loads the model and the tokenizer.</summary>
    /// <exception cref="FileNotFoundException">The model or tokenizer is missing.</exception>
    /// <exception cref="UserInputException">A setting is out of range, or the model is no decoder.</exception>
    public GeneratorChatBackend(GeneratorBackendOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.DefaultMaxTokens < 1 || options.MaxTokensLimit < options.DefaultMaxTokens)
            throw new UserInputException("the default max tokens must be at least 1 and at most the max tokens limit.");
        if (!(options.DefaultTemperature >= 0) || double.IsInfinity(options.DefaultTemperature))
            throw new UserInputException("the default temperature must be finite and at least 0.");
        if (options.MaxPromptTokens is < 1) throw new OptionException("max-prompt-tokens", $"{{max-prompt-tokens}} must be at least 1, not {options.MaxPromptTokens}.");
        if (!File.Exists(options.ModelPath) && !DecoderFolder.IsDecoderFolder(options.ModelPath))
            throw new FileNotFoundException($"{options.ModelPath}: no such model file or GenAI/Optimum model folder.", options.ModelPath);
        _options = options;
        _tokenizer = TokenizerLoader.Load(options.Tokenizer);
        TemplateChoice = TemplateChoice.Resolve(options.Template, options.Tokenizer, _tokenizer, ChatTemplates.Plain);
        _template = TemplateChoice.Template!;
        var ends = new List<int>(_tokenizer.StopIds);
        if (_tokenizer.TokenToId(_template.EndOfTurn.Trim()) is int endOfTurn && _tokenizer.IsSpecial(endOfTurn) && !ends.Contains(endOfTurn))
            ends.Add(endOfTurn);
        _endIds = [.. ends];
        _pad = _tokenizer.PadId ?? _tokenizer.EosId ?? 0;
        ModelId = options.ModelId ?? Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(options.ModelPath));
        var model = DecoderFolder.LoadModel(options.ModelPath);
        ContextLimit = options.MaxPromptTokens ?? ContextLength.Of(model, options.Tokenizer) ?? ContextLength.Default;
        _generator = new Generator(model, (options.Runtime ?? new SessionConfig()) with { CpuMemoryArena = false });
    }

    /// <summary>The demo model's key/value-cache graph with its tokenizer and template.</summary>
    public static GeneratorChatBackend FromDemo(DemoModelFiles demo, string modelId = "safetune-demo") =>
        new(GeneratorBackendOptions.ForDemo(demo) with { ModelId = modelId });

    /// <inheritdoc/>
    public string ModelId { get; }

    /// <summary>The most tokens a prompt and its completion may have together.</summary>
    public int ContextLimit { get; }

    /// <summary>The chat template in use.</summary>
    public ChatTemplate Template => _template;

    /// <summary>How the chat template was chosen (see <see cref="Models.Chat.TemplateChoice.Resolve"/>).</summary>
    public TemplateChoice TemplateChoice { get; }

    /// <summary>The token ids that end a completion.</summary>
    public IReadOnlyList<int> EndTokenIds => _endIds;

    /// <inheritdoc/>
    public async Task<ChatCompletionResult> CompleteAsync(ChatCompletionRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var inv = CultureInfo.InvariantCulture;
        if (request.Messages.Count == 0) throw new ChatRequestException(400, "'messages' is empty.");
        var messages = request.Messages.Select(m => m.Role switch
        {
            "system" or "developer" => ChatMessage.System(m.Content),
            "user" => ChatMessage.User(m.Content),
            "assistant" => ChatMessage.Assistant(m.Content),
            _ => throw new ChatRequestException(400, $"message role '{m.Role}' is not supported (use system, user or assistant)."),
        }).ToList();
        int maxTokens = request.MaxTokens ?? _options.DefaultMaxTokens;
        if (maxTokens < 1 || maxTokens > _options.MaxTokensLimit)
            throw new ChatRequestException(400, string.Create(inv, $"max_tokens must be from 1 to {_options.MaxTokensLimit} (got {maxTokens})."));
        double temperature = request.Temperature ?? _options.DefaultTemperature;
        if (!(temperature >= 0) || temperature > 2) throw new ChatRequestException(400, string.Create(inv, $"temperature must be from 0 to 2 (got {temperature})."));
        double topP = request.TopP ?? 1;
        if (!(topP > 0) || topP > 1) throw new ChatRequestException(400, string.Create(inv, $"top_p must be in (0, 1] (got {topP})."));
        var stops = request.Stop.Where(s => s.Length > 0).ToArray();

        int[] prompt;
        try { prompt = ContextLength.Encode(_tokenizer, _template.RenderPrompt(messages), ContextLimit, truncate: false, "messages", "serve --max-prompt-tokens sets the limit"); }
        catch (PromptTooLongException e)
        {
            throw new ChatRequestException(400, e.Message);
        }
        if (prompt.Length == 0) throw new ChatRequestException(400, "the rendered prompt has no tokens.");
        if (prompt.Length >= ContextLimit)
            throw new ChatRequestException(400, string.Create(inv, $"the prompt has {prompt.Length} tokens, which leaves no room for a reply in this model's context of {ContextLimit} tokens."));
        var options = new GenerationOptions
        {
            MaxNewTokens = Math.Min(maxTokens, ContextLimit - prompt.Length),
            Temperature = (float)temperature,
            TopP = (float)topP,
            Seed = request.Seed ?? 0,
            EosTokenIds = _endIds,
            PadTokenId = _pad,
            StopPredicate = tokens => cancellationToken.IsCancellationRequested || (stops.Length > 0 && StopAt(Decode(tokens), stops) >= 0),
        };
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        GeneratedSequence generated;
        try
        {
            generated = await Task.Run(() => _generator.Generate([prompt], options)[0], cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
        cancellationToken.ThrowIfCancellationRequested();
        var text = Decode(generated.Tokens);
        int cut = stops.Length > 0 ? StopAt(text, stops) : -1;
        if (cut >= 0) text = text[..cut];
        var finish = generated.Reason == FinishReason.MaxNewTokens && cut < 0 ? ChatFinishReason.Length : ChatFinishReason.Stop;
        return new ChatCompletionResult(text, finish, prompt.Length, generated.Tokens.Length);
    }

    /// <summary>The text of generated tokens, end tokens left out.</summary>
    private string Decode(IEnumerable<int> tokens) => _tokenizer.Decode(tokens.Where(t => !_endIds.Contains(t)));

    /// <summary>Where the first stop text starts in <paramref name="text"/>, or -1.</summary>
    private static int StopAt(string text, string[] stops)
    {
        int best = -1;
        foreach (var s in stops)
        {
            int i = text.IndexOf(s, StringComparison.Ordinal);
            if (i >= 0 && (best < 0 || i < best)) best = i;
        }
        return best;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _generator.Dispose();
        _gate.Dispose();
    }
}
