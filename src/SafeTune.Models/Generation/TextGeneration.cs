using System.Diagnostics;
using System.Text.Json;
using SafeTune.Models.Chat;
using SafeTune.Models.Tokenization;
using SafeTune.Onnx;
using SafeTune.Runtime;

namespace SafeTune.Models.Generation;

/// <summary>What <see cref="TextGeneration.Run"/> generates from.</summary>
public sealed record TextGenerationRequest
{
    /// <summary>The ONNX model (<c>input_ids</c> → <c>logits</c>, with past key/value inputs when it has a cache).</summary>
    public required Model Model { get; init; }

    /// <summary>The model's tokenizer and chat template (a Hub model folder).</summary>
    public required ModelFolderTokenizer Folder { get; init; }

    /// <summary>
    /// A prompt. Without a chat template it is raw text that the model continues, with the special tokens the tokenizer
    /// adds (bos, as tokenizer_config.json says); with one it is one user message, rendered by the template.
    /// </summary>
    public string? Prompt { get; init; }

    /// <summary>A conversation: a JSON array of <c>{"role", "content"}</c> messages, rendered by the model's template.</summary>
    public JsonElement? Messages { get; init; }

    /// <summary>Sampling and stopping; end-of-sequence ids default to the tokenizer's.</summary>
    public GenerationOptions Options { get; init; } = new();

    /// <summary>Where the session runs.</summary>
    public SessionConfig? Session { get; init; }
}

/// <summary>What was generated.</summary>
/// <param name="Text">The generated text (special tokens left out).</param>
/// <param name="Ids">The generated ids (an end-of-sequence id included when generation stopped on one).</param>
/// <param name="PromptTokens">How many ids the prompt had.</param>
/// <param name="TokensPerSecond">Generated ids per second of generation (prompt processing included).</param>
/// <param name="Reason">Why generation stopped.</param>
/// <param name="UsedCache">Whether the model's key/value cache was used.</param>
public sealed record TextGenerationResult(string Text, int[] Ids, int PromptTokens, double TokensPerSecond, FinishReason Reason, bool UsedCache);

/// <summary>Text generation from a Hub model folder's tokenizer and template, streaming text as it comes.</summary>
public static class TextGeneration
{
    /// <summary>The prompt ids for <paramref name="request"/>.</summary>
    /// <exception cref="InvalidDataException">The prompt cannot be rendered or tokenized; the message names why.</exception>
    public static int[] PromptIds(TextGenerationRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var folder = request.Folder;
        var tokenizer = folder.Tokenizer ?? throw new InvalidDataException($"'{folder.Path}' has no tokenizer, so nothing can be generated.");
        if (request.Messages is { } messages) return folder.TokenizeMessages(messages, addGenerationPrompt: true).Ids!;
        var prompt = request.Prompt ?? throw new UserInputException("give a prompt or messages.");
        if (folder.Template is null) return tokenizer.Encode(prompt, addSpecialTokens: true);
        using var doc = JsonDocument.Parse(JsonSerializer.Serialize(new[] { new { role = "user", content = prompt } }));
        return folder.TokenizeMessages(doc.RootElement.Clone(), addGenerationPrompt: true).Ids!;
    }

    /// <summary>Generates, calling <paramref name="onText"/> with each new piece of text as soon as it decodes cleanly.</summary>
    /// <exception cref="InvalidDataException">The prompt cannot be rendered or tokenized.</exception>
    /// <exception cref="UserInputException">The model is not a decoder with <c>input_ids</c> and <c>logits</c>, or an option is out of range.</exception>
    public static TextGenerationResult Run(TextGenerationRequest request, Action<string>? onText = null)
    {
        ArgumentNullException.ThrowIfNull(request);
        var tokenizer = request.Folder.Tokenizer ?? throw new InvalidDataException($"'{request.Folder.Path}' has no tokenizer, so nothing can be generated.");
        var prompt = PromptIds(request);
        if (prompt.Length == 0) throw new InvalidDataException("the prompt encodes to no tokens; give some text.");

        var generated = new List<int>();
        var printed = 0;
        void Emit(bool final)
        {
            if (onText is null) return;
            var text = tokenizer.Decode(generated, skipSpecialTokens: true);
            // A character split over byte tokens decodes to U+FFFD until its last byte arrives.
            if (!final && text.EndsWith('\uFFFD')) return;
            if (text.Length > printed)
            {
                onText(text[printed..]);
                printed = text.Length;
            }
        }

        var options = request.Options with
        {
            EosTokenIds = request.Options.EosTokenIds.Count > 0 ? request.Options.EosTokenIds : tokenizer.StopIds,
            PadTokenId = tokenizer.PadId ?? tokenizer.EosId ?? 0,
            OnToken = (_, token) =>
            {
                generated.Add(token);
                Emit(final: false);
            },
        };
        using var generator = new Generator(request.Model, request.Session);
        var clock = Stopwatch.StartNew();
        var sequence = generator.Generate([prompt], options)[0];
        var seconds = clock.Elapsed.TotalSeconds;
        Emit(final: true);
        return new TextGenerationResult(
            tokenizer.Decode(sequence.Tokens, skipSpecialTokens: true), sequence.Tokens, prompt.Length,
            seconds > 0 ? sequence.Tokens.Length / seconds : 0, sequence.Reason, generator.UsesCache);
    }
}
