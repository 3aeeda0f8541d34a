using System.Diagnostics;
using SafeTune.Models.Chat;
using SafeTune.Models.Generation;
using SafeTune.Onnx;
using SafeTune.Safety.Critics;
using SafeTune.Safety.Data;
using SafeTune.Training.Data;

namespace SafeTune.Training.Evaluation;

/// <param name="Text">The reply, without its end-of-turn marker, trimmed.</param>
/// <param name="Tokens">Tokens generated (an end token included).</param>
internal readonly record struct GeneratedReply(string Text, int Tokens);

/// <summary>
/// Evaluates a chat model: greedy replies to harmful, over-refusal and benign prompts (batched, stopping at the chat
/// template's end-of-turn marker or the tokenizer's end of sequence), judged for attack success, refusal and exact
/// answers, and the response loss of benign references. Runs in-process on a model already built, so a fine-tuning loop
/// can call it between steps. Owns its ONNX Runtime sessions (and the default judge); not thread-safe.
/// </summary>
internal sealed class Evaluator : IDisposable
{
    private readonly EvalModel _model;
    private readonly EvalOptions _options;
    private readonly Generator _generator;
    private readonly GenerationOptions _generation;
    private readonly ISafetyJudge _judge;
    private readonly bool _ownsJudge;
    private readonly KeywordRefusalJudge _refusal;
    private readonly HashSet<int> _endIds;
    private readonly string? _endText;
    private ResponseLossSession? _loss;
    private readonly int _promptLimit;

    /// <summary>Checks the tokenizer against the model and opens the generation session.</summary>
    /// <exception cref="InvalidDataException">The tokenizer has ids the model has no embedding row for.</exception>
    /// <exception cref="UserInputException">An option is out of range, or the model has no <c>input_ids</c> / <c>logits</c>.</exception>
    public Evaluator(EvalModel model, EvalOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        _options = options ?? new EvalOptions();
        _options.Validate();
        VocabularyCheck.Ensure(model.Model, model.Name, model.Tokenizer);
        if (model.LossModel is { } lossModel) VocabularyCheck.Ensure(lossModel, model.Name, model.Tokenizer);

        var tokenizer = model.Tokenizer;
        _endIds = [.. tokenizer.StopIds];
        var end = tokenizer.Encode(model.Template.EndOfTurn);
        if (end.Length > 0 && tokenizer.IsSpecial(end[0])) _endIds.Add(end[0]);
        else if (model.Template.EndOfTurn.Length > 0) _endText = model.Template.EndOfTurn;
        _generation = new GenerationOptions
        {
            MaxNewTokens = _options.MaxNewTokens,
            EosTokenIds = _endIds,
            PadTokenId = SftBatcher.PadIdOf(tokenizer),
            StopPredicate = _endText is null ? null : tokens => tokenizer.Decode(tokens).Contains(_endText, StringComparison.Ordinal),
        };

        _promptLimit = _options.MaxPromptTokens ?? ContextLength.Of(model.Model, tokenizer.Source) ?? ContextLength.Default;
        _generator = new Generator(model.Model, _options.Runtime);
        try
        {
            _ownsJudge = _options.Judge is null;
            _judge = _options.Judge ?? new KeywordRefusalJudge();
            _refusal = _options.RefusalJudge ?? _judge as KeywordRefusalJudge ?? new KeywordRefusalJudge();
        }
        catch
        {
            _generator.Dispose();
            throw;
        }
    }

    /// <summary>Evaluates <paramref name="model"/> on <paramref name="suite"/> with a fresh evaluator.</summary>
    public static EvalReport Run(EvalModel model, EvalSuite suite, EvalOptions? options = null, IProgress<EvalProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        using var evaluator = new Evaluator(model, options);
        return evaluator.Run(suite, progress, cancellationToken);
    }

    /// <summary>The most tokens a rendered prompt may have.</summary>
    public int PromptLimit => _promptLimit;

    /// <summary>The options in use.</summary>
    public EvalOptions Options => _options;

    /// <summary>The judge of harmful replies.</summary>
    public ISafetyJudge Judge => _judge;

    /// <summary>Runs the whole evaluation.</summary>
    public EvalReport Run(EvalSuite suite, IProgress<EvalProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(suite);
        if (suite.IsEmpty) throw new UserInputException("nothing to evaluate: give harmful, benign or over-refusal prompts.");
        var clock = Stopwatch.StartNew();
        var generationClock = new Stopwatch();
        double judgeSeconds = 0, lossSeconds = 0;
        var replies = new List<EvalReply>();
        long generated = 0;

        IReadOnlyList<GeneratedReply> Replies(string stage, IReadOnlyList<IReadOnlyList<ChatMessage>> conversations, IReadOnlyList<string> ids)
        {
            generationClock.Start();
            int done = 0;
            progress?.Report(new EvalProgress(stage, 0, conversations.Count));
            var result = Generate(conversations, n => progress?.Report(new EvalProgress(stage, done += n, conversations.Count)), cancellationToken, ids);
            generationClock.Stop();
            generated += result.Sum(r => (long)r.Tokens);
            return result;
        }

        // Harmful prompts: the judge's score; attack success at or above the threshold.
        double? asr = null, harmfulScore = null;
        int judgeFailures = 0;
        if (suite.Harmful.Count > 0)
        {
            var generatedReplies = Replies("harmful", [.. suite.Harmful.Select(p => (IReadOnlyList<ChatMessage>)[ChatMessage.User(p.Text)])], [.. suite.Harmful.Select(p => p.Id)]);
            var judgeClock = Stopwatch.StartNew();
            progress?.Report(new EvalProgress("judge", 0, suite.Harmful.Count));
            var verdicts = _judge.Score([.. suite.Harmful.Select((p, i) => new JudgeItem(p.Text, generatedReplies[i].Text))], cancellationToken);
            progress?.Report(new EvalProgress("judge", suite.Harmful.Count, suite.Harmful.Count));
            judgeSeconds = judgeClock.Elapsed.TotalSeconds;
            for (int i = 0; i < suite.Harmful.Count; i++)
            {
                var v = verdicts[i];
                if (v.Failed) judgeFailures++;
                replies.Add(new EvalReply("harmful", suite.Harmful[i].Id, suite.Harmful[i].Text, generatedReplies[i].Text, generatedReplies[i].Tokens, _refusal.IsRefusal(generatedReplies[i].Text),
                    v.Score, v.Failed, v.Error, null, null));
            }
            asr = verdicts.Count(v => v.Score >= _options.AsrThreshold) / (double)verdicts.Count;
            harmfulScore = verdicts.Average(v => v.Score);
        }

        // Safe prompts that sound unsafe: the share refused.
        double? overRefusal = null;
        if (suite.OverRefusal.Count > 0)
        {
            var generatedReplies = Replies("overrefusal", [.. suite.OverRefusal.Select(p => (IReadOnlyList<ChatMessage>)[ChatMessage.User(p.Text)])], [.. suite.OverRefusal.Select(p => p.Id)]);
            for (int i = 0; i < suite.OverRefusal.Count; i++)
                replies.Add(new EvalReply("overrefusal", suite.OverRefusal[i].Id, suite.OverRefusal[i].Text, generatedReplies[i].Text, generatedReplies[i].Tokens,
                    _refusal.IsRefusal(generatedReplies[i].Text), null, false, null, null, null));
            overRefusal = replies.Where(r => r.Set == "overrefusal").Count(r => r.Refused) / (double)suite.OverRefusal.Count;
        }

        // Benign requests: exact answers, and the loss of the reference responses.
        double? exact = null, loss = null;
        int scored = 0;
        long lossTokens = 0;
        if (suite.Benign.Count > 0)
        {
            var generatedReplies = Replies("benign", [.. suite.Benign.Select(e => e.Context)], [.. suite.Benign.Select(e => e.Id)]);
            int correct = 0;
            for (int i = 0; i < suite.Benign.Count; i++)
            {
                var e = suite.Benign[i];
                var ok = AnswerMatch.IsCorrect(generatedReplies[i].Text, e.Response, _options.ShortAnswerChars);
                if (ok is bool b) { scored++; if (b) correct++; }
                replies.Add(new EvalReply("benign", e.Id, e.Prompt, generatedReplies[i].Text, generatedReplies[i].Tokens, _refusal.IsRefusal(generatedReplies[i].Text), null, false, null,
                    e.Response, ok));
            }
            exact = scored == 0 ? null : correct / (double)scored;
            if (_options.ResponseLoss)
            {
                var lossClock = Stopwatch.StartNew();
                var result = ResponseLoss(suite.Benign, progress, cancellationToken);
                lossSeconds = lossClock.Elapsed.TotalSeconds;
                loss = double.IsFinite(result.Loss) ? result.Loss : null;
                lossTokens = result.Tokens;
            }
        }

        var counts = new EvalCounts(suite.Harmful.Count, suite.Benign.Count, suite.OverRefusal.Count, scored, lossTokens, judgeFailures, generated);
        return new EvalReport(asr, harmfulScore, overRefusal, new UtilityReport(exact, loss, loss is double l ? Math.Exp(l) : null), counts,
            clock.Elapsed.TotalSeconds, new EvalTimings(generationClock.Elapsed.TotalSeconds, judgeSeconds, lossSeconds), _judge.Name, replies);
    }

    /// <summary>
    /// Greedy replies to <paramref name="conversations"/> (each rendered with the chat template up to the assistant header), in
    /// input order. Prompts are sorted by length and generated <see cref="EvalOptions.BatchSize"/> at a time, so a batch pads little.
    /// </summary>
    /// <param name="conversations">The messages before each reply.</param>
    /// <param name="progress">Called with the number of replies finished by each batch.</param>
    /// <param name="cancellationToken">Checked between batches.</param>
    /// <param name="ids">Where each conversation comes from (file and line), for the error about a prompt past <see cref="PromptLimit"/>.</param>
    /// <exception cref="PromptTooLongException">A prompt has more tokens than <see cref="PromptLimit"/> and prompts are not truncated.</exception>
    public IReadOnlyList<GeneratedReply> Generate(IReadOnlyList<IReadOnlyList<ChatMessage>> conversations, Action<int>? progress = null,
        CancellationToken cancellationToken = default, IReadOnlyList<string>? ids = null)
    {
        ArgumentNullException.ThrowIfNull(conversations);
        var tokenizer = _model.Tokenizer;
        var prompts = conversations.Select((c, i) => ContextLength.Encode(tokenizer, _model.Template.RenderPrompt(c), _promptLimit, _options.TruncatePrompts,
            ids?[i] ?? $"prompt {i + 1}", "--max-prompt-tokens sets the limit; --truncate-prompts keeps each prompt's end")).ToArray();
        var order = Enumerable.Range(0, prompts.Length).OrderBy(i => prompts[i].Length).ToArray();
        var result = new GeneratedReply[prompts.Length];
        for (int start = 0; start < order.Length; start += _options.BatchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var chunk = order.AsSpan(start, Math.Min(_options.BatchSize, order.Length - start)).ToArray();
            var outputs = _generator.Generate([.. chunk.Select(i => prompts[i])], _generation);
            for (int k = 0; k < chunk.Length; k++) result[chunk[k]] = Clean(outputs[k].Tokens);
            progress?.Invoke(chunk.Length);
        }
        return result;
    }

    /// <summary>The mean cross-entropy of the references of <paramref name="examples"/> given their prompts.</summary>
    public LossResult ResponseLoss(IReadOnlyList<SftExample> examples, IProgress<EvalProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(examples);
        var set = SftTokenizer.Tokenize(examples, _model.Tokenizer, _model.Template, new TokenizeOptions { MaxLength = Math.Min(_options.MaxLength, _promptLimit) });
        _loss ??= new ResponseLossSession(_model.LossModel ?? _model.Model, _options.Runtime);
        int done = 0;
        progress?.Report(new EvalProgress("loss", 0, set.Examples.Count));
        return _loss.Measure(set.Examples, _options.BatchSize,
            n => progress?.Report(new EvalProgress("loss", done += n, set.Examples.Count)), cancellationToken);
    }

    private GeneratedReply Clean(int[] tokens)
    {
        var text = _model.Tokenizer.Decode(tokens.Where(t => !_endIds.Contains(t)));
        if (_endText is not null && text.IndexOf(_endText, StringComparison.Ordinal) is int at and >= 0) text = text[..at];
        return new GeneratedReply(text.Trim(), tokens.Length);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _generator.Dispose();
        _loss?.Dispose();
        if (_ownsJudge) _judge.Dispose();
    }
}
