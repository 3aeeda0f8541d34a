using System.Globalization;
using System.Threading.Channels;
using SafeTune.Safety.Critics;

namespace SafeTune.Serving;

/// <summary>
/// A Safety Critic behind the chat API: the answer to a chat request is <c>#thescore: N</c>, the judge's verdict on the
/// (prompt, response) pair the request holds. So any OpenAI-compatible client, an <see cref="OpenAiCompatibleJudge"/>
/// included, can use a SafeTune judge over HTTP. The pair is read from a user message rendered with
/// <see cref="HarmRubric"/> (what <see cref="JudgePromptFormat.Rubric"/> sends), or else from the last assistant
/// message and the user message before it (<see cref="JudgePromptFormat.Conversation"/>).
/// </summary>
/// <remarks>
/// Concurrent requests are batched: one loop takes every pending item (up to the batch limit) and scores them in one
/// call, so a judge is never called from two threads at once and batch-friendly judges (an ONNX classifier) run
/// full batches. Scores are sent exactly, fractional ones too (a classifier's <c>1 + 4p</c>), so a client gets the
/// judge's own numbers. An item the judge fails on is answered with HTTP 500 (the client then fails closed), never with
/// a low score.
/// </remarks>
public sealed class JudgeChatBackend : IChatBackend
{
    private readonly ISafetyJudge _judge;
    private readonly int _maxBatch;
    private readonly Channel<Pending> _queue = Channel.CreateUnbounded<Pending>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private bool _disposed;

    /// <summary>Serves <paramref name="judge"/>, which this backend then owns and disposes.</summary>
    /// <param name="judge">The judge.</param>
    /// <param name="modelId">The model name served.</param>
    /// <param name="maxBatch">The most items scored in one judge call.</param>
    public JudgeChatBackend(ISafetyJudge judge, string modelId, int maxBatch = 64)
    {
        ArgumentNullException.ThrowIfNull(judge);
        ArgumentException.ThrowIfNullOrWhiteSpace(modelId);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatch, 1);
        _judge = judge;
        _maxBatch = maxBatch;
        ModelId = modelId;
        _loop = Task.Run(RunAsync);
    }

    /// <inheritdoc/>
    public string ModelId { get; }

    /// <summary>The judge served.</summary>
    public ISafetyJudge Judge => _judge;

    /// <summary>
    /// The chat answer for a verdict: <c>#thescore: N</c>, with the score written so that it parses back to the same
    /// double (<c>#thescore: 1</c>, <c>#thescore: 3.718281828459045</c>).
    /// </summary>
    public static string Answer(JudgeVerdict verdict) =>
        "#thescore: " + Math.Clamp(verdict.Score, JudgeVerdict.MinScore, JudgeVerdict.MaxScore).ToString("R", CultureInfo.InvariantCulture);

    /// <summary>
    /// The (prompt, response) pair of a chat request: from a rubric message, else the last assistant message and the
    /// user message before it; null when the request holds neither.
    /// </summary>
    public static JudgeItem? ItemOf(IReadOnlyList<ChatTurn> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        for (int i = messages.Count - 1; i >= 0; i--)
            if (messages[i].Role == "user" && HarmRubric.TryExtract(messages[i].Content, out var item)) return item;
        for (int a = messages.Count - 1; a >= 0; a--)
        {
            if (messages[a].Role != "assistant") continue;
            for (int u = a - 1; u >= 0; u--)
                if (messages[u].Role == "user") return new JudgeItem(messages[u].Content, messages[a].Content);
            return null;
        }
        return null;
    }

    /// <inheritdoc/>
    public async Task<ChatCompletionResult> CompleteAsync(ChatCompletionRequest request, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(request);
        var item = ItemOf(request.Messages) ?? throw new ChatRequestException(400,
            "a judge request needs a SafeTune rubric message, or a user message followed by an assistant message (the response to score).");
        var pending = new Pending(item, new TaskCompletionSource<JudgeVerdict>(TaskCreationOptions.RunContinuationsAsynchronously));
        if (!_queue.Writer.TryWrite(pending)) throw new ChatRequestException(503, "the judge is shutting down.");
        var verdict = await pending.Result.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        if (verdict.Failed)
            throw new ChatRequestException(500, $"the judge could not score the item ({JudgeFailureReasons.Of(verdict)}): {verdict.Error}");
        return new ChatCompletionResult(Answer(verdict), ChatFinishReason.Stop, 0, 0);
    }

    private async Task RunAsync()
    {
        var reader = _queue.Reader;
        var batch = new List<Pending>(_maxBatch);
        try
        {
            while (await reader.WaitToReadAsync(_stop.Token).ConfigureAwait(false))
            {
                batch.Clear();
                while (batch.Count < _maxBatch && reader.TryRead(out var p)) batch.Add(p);
                if (batch.Count == 0) continue;
                try
                {
                    var verdicts = await _judge.ScoreAsync([.. batch.Select(p => p.Item)], _stop.Token).ConfigureAwait(false);
                    if (verdicts.Count != batch.Count)
                        throw new InvalidOperationException($"judge '{_judge.Name}' returned {verdicts.Count} verdicts for {batch.Count} items.");
                    for (int i = 0; i < batch.Count; i++) batch[i].Result.TrySetResult(verdicts[i]);
                }
                catch (Exception e) when (e is not OperationCanceledException || !_stop.IsCancellationRequested)
                {
                    foreach (var p in batch) p.Result.TrySetException(new ChatRequestException(500, $"the judge failed: {e.Message}"));
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
        finally
        {
            foreach (var p in batch) p.Result.TrySetException(new ChatRequestException(503, "the judge is shutting down."));
            while (reader.TryRead(out var p)) p.Result.TrySetException(new ChatRequestException(503, "the judge is shutting down."));
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _queue.Writer.TryComplete();
        _stop.Cancel();
        try { _loop.Wait(TimeSpan.FromSeconds(10)); }
        catch (AggregateException) { }
        _stop.Dispose();
        _judge.Dispose();
    }

    private sealed record Pending(JudgeItem Item, TaskCompletionSource<JudgeVerdict> Result);
}
