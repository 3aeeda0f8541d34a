using Microsoft.ML.OnnxRuntime;
using SafeTune.Onnx;
using SafeTune.Runtime;

namespace SafeTune.Models.Generation;

/// <summary>
/// Generates tokens with a decoder model. A model with key/value-cache inputs (<c>attention_mask</c>,
/// <c>past_key_values.{i}.key</c> / <c>.value</c>; see <see cref="DecoderGraphOptions.KvCache"/>) runs the prompts once
/// and then one token per step; any other model with <c>input_ids</c> and <c>logits</c> re-runs the whole sequence each
/// step (rows of equal length together, or all rows left-padded when the model takes an <c>attention_mask</c>).
/// Prompts of different lengths are left-padded. Owns its session.
/// </summary>
public sealed class Generator : IDisposable
{
    private readonly InferenceSession _session;
    private readonly RunOptions _runOptions = new();
    private readonly bool _hasMask, _hasPositions;
    private readonly int _layers, _kvHeads, _headDim;
    private bool _disposed;

    /// <summary>Creates a session for <paramref name="model"/>.</summary>
    public Generator(Model model, SessionConfig? config = null) : this(SessionFactory.Create(model, config)) { }

    /// <summary>Wraps <paramref name="session"/>, taking ownership of it (it is disposed also when it is rejected).</summary>
    public Generator(InferenceSession session)
    {
        _session = session;
        try
        {
            var inputs = session.InputMetadata;
            if (!inputs.ContainsKey("input_ids")) throw new UserInputException("the model has no 'input_ids' input.");
            if (!session.OutputMetadata.ContainsKey("logits")) throw new UserInputException("the model has no 'logits' output.");
            _hasMask = inputs.ContainsKey("attention_mask");
            _hasPositions = inputs.ContainsKey("position_ids"); // Optimum exports of Llama-family models take them
            while (inputs.ContainsKey(KvCacheInputs.PastKey(_layers))) _layers++;
            if (_layers > 0)
            {
                if (!_hasMask) throw new UserInputException("a model with past key/value inputs must take an 'attention_mask'.");
                var dims = inputs[KvCacheInputs.PastKey(0)].Dimensions;
                if (dims.Length != 4 || dims[1] <= 0 || dims[3] <= 0)
                    throw new UserInputException($"'{KvCacheInputs.PastKey(0)}' must be [batch, kv_heads, past_sequence, head_dim] with fixed heads and width.");
                (_kvHeads, _headDim) = (dims[1], dims[3]);
                for (int i = 0; i < _layers; i++)
                    if (!inputs.ContainsKey(KvCacheInputs.PastValue(i)) || !session.OutputMetadata.ContainsKey(KvCacheInputs.PresentKey(i))
                        || !session.OutputMetadata.ContainsKey(KvCacheInputs.PresentValue(i)))
                        throw new UserInputException($"layer {i} lacks a past value input or a present key/value output.");
            }
        }
        catch
        {
            _runOptions.Dispose();
            session.Dispose();
            throw;
        }
    }

    /// <summary>True when the model has key/value-cache inputs and steps reuse them.</summary>
    public bool UsesCache => _layers > 0;

    /// <summary>
    /// Generates tokens after each prompt (the batch is all prompts). Returns, per prompt in order, the generated token
    /// ids (without the prompt) and why the row stopped.
    /// </summary>
    public IReadOnlyList<GeneratedSequence> Generate(IReadOnlyList<int[]> prompts, GenerationOptions? options = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(prompts);
        options ??= new GenerationOptions();
        options.Validate();
        if (prompts.Count == 0) return [];
        for (int r = 0; r < prompts.Count; r++)
            if (prompts[r] is null || prompts[r].Length == 0) throw new UserInputException($"prompt {r} is empty.");
        var rows = prompts.Select(_ => new Row()).ToArray();
        if (options.MaxNewTokens > 0)
        {
            var sampler = new Sampler(options);
            if (UsesCache) DecodeWithCache(prompts, rows, options, sampler);
            else Recompute(prompts, rows, options, sampler);
        }
        return rows.Select(r => new GeneratedSequence([.. r.Tokens], r.Reason ?? FinishReason.MaxNewTokens)).ToArray();
    }

    private sealed class Row
    {
        public List<int> Tokens { get; } = [];
        public FinishReason? Reason { get; set; }
        public bool Done => Reason is not null;
    }

    /// <summary>Picks the next token of a row from its last-position logits and records why it stops, if it does.</summary>
    private static void Accept(int index, Row row, ReadOnlySpan<float> logits, GenerationOptions o, Sampler sampler)
    {
        int token = sampler.Next(logits);
        row.Tokens.Add(token);
        o.OnToken?.Invoke(index, token);
        if (o.EosTokenIds.Contains(token)) row.Reason = FinishReason.EndOfSequence;
        else if (o.StopSequences.Any(s => EndsWith(row.Tokens, s))) row.Reason = FinishReason.StopSequence;
        else if (o.StopPredicate?.Invoke([.. row.Tokens]) == true) row.Reason = FinishReason.StopPredicate;
        else if (row.Tokens.Count >= o.MaxNewTokens) row.Reason = FinishReason.MaxNewTokens;
    }

    private static bool EndsWith(List<int> tokens, int[] suffix)
    {
        if (suffix.Length > tokens.Count) return false;
        for (int i = 0; i < suffix.Length; i++)
            if (tokens[tokens.Count - suffix.Length + i] != suffix[i]) return false;
        return true;
    }

    private void DecodeWithCache(IReadOnlyList<int[]> prompts, Row[] rows, GenerationOptions o, Sampler sampler)
    {
        int batch = prompts.Count, length = prompts.Max(p => p.Length);
        var inputNames = new List<string> { "input_ids", "attention_mask" };
        var outputNames = new List<string> { "logits" };
        for (int i = 0; i < _layers; i++)
        {
            inputNames.Add(KvCacheInputs.PastKey(i));
            inputNames.Add(KvCacheInputs.PastValue(i));
            outputNames.Add(KvCacheInputs.PresentKey(i));
            outputNames.Add(KvCacheInputs.PresentValue(i));
        }
        // Prefill: the left-padded prompts, with an empty past.
        var ids = new long[batch * length];
        var mask = new List<long>[batch];
        for (int r = 0; r < batch; r++)
        {
            int pad = length - prompts[r].Length;
            mask[r] = [.. Enumerable.Repeat(0L, pad), .. Enumerable.Repeat(1L, prompts[r].Length)];
            for (int t = 0; t < length; t++) ids[r * length + t] = t < pad ? o.PadTokenId : prompts[r][t - pad];
        }
        var past = new OrtValue[2 * _layers];
        try
        {
            for (int i = 0; i < past.Length; i++) past[i] = OrtValues.Zeros(ElementType.Float, batch, _kvHeads, 0, _headDim);
            int sequence = length;
            while (true)
            {
                int total = mask[0].Count;
                var maskData = mask.SelectMany(m => m).ToArray();
                var outputs = RunStep(inputNames, outputNames, ids, batch, sequence, maskData, total, past);
                // The present keys/values become the next step's past; only the logits are read and released here.
                for (int i = 0; i < past.Length; i++)
                {
                    past[i].Dispose();
                    past[i] = outputs[i + 1];
                }
                using (var logits = outputs[0])
                {
                    var span = logits.GetTensorDataAsSpan<float>();
                    int vocab = (int)OrtValues.ShapeOf(logits)[2];
                    for (int r = 0; r < batch; r++)
                        if (!rows[r].Done) Accept(r, rows[r], span.Slice(((r * sequence) + sequence - 1) * vocab, vocab), o, sampler);
                }
                if (rows.All(r => r.Done)) break;
                // Next step: one token per row (finished rows get a masked pad token).
                sequence = 1;
                ids = new long[batch];
                for (int r = 0; r < batch; r++)
                {
                    ids[r] = rows[r].Done ? o.PadTokenId : rows[r].Tokens[^1];
                    mask[r].Add(rows[r].Done ? 0 : 1);
                }
            }
        }
        finally
        {
            foreach (var v in past) v?.Dispose();
        }
    }

    /// <summary>Runs one step; the caller owns every returned value.</summary>
    private IReadOnlyList<OrtValue> RunStep(List<string> inputNames, List<string> outputNames, long[] ids, int batch, int sequence,
        long[] mask, int total, OrtValue[] past)
    {
        using var idsValue = OrtValues.Wrap(ids, batch, sequence);
        using var maskValue = OrtValues.Wrap(mask, batch, total);
        var inputs = new List<OrtValue>(3 + past.Length) { idsValue, maskValue };
        inputs.AddRange(past);
        using var positions = _hasPositions ? OrtValues.Wrap(Positions(mask, batch, total, sequence), batch, sequence) : null;
        if (positions is not null)
        {
            inputNames = [.. inputNames, "position_ids"];
            inputs.Add(positions);
        }
        // Disposing the returned collection would release every value; the values are handed out one by one instead.
        var outputs = _session.Run(_runOptions, inputNames, inputs, outputNames);
        return [.. outputs];
    }

    /// <summary>
    /// The <c>position_ids</c> of the last <paramref name="sequence"/> tokens of each row of a [batch, total] attention
    /// mask: the number of real tokens before each one, so left padding does not shift positions.
    /// </summary>
    public static long[] Positions(long[] mask, int batch, int total, int sequence)
    {
        var result = new long[batch * sequence];
        for (int r = 0; r < batch; r++)
        {
            long seen = 0;
            for (int t = 0; t < total; t++)
            {
                seen += mask[r * total + t];
                if (t >= total - sequence) result[r * sequence + t - (total - sequence)] = Math.Max(seen - 1, 0);
            }
        }
        return result;
    }

    private void Recompute(IReadOnlyList<int[]> prompts, Row[] rows, GenerationOptions o, Sampler sampler)
    {
        var inputNames = _hasMask ? new[] { "input_ids", "attention_mask" } : ["input_ids"];
        var outputNames = new[] { "logits" };
        while (true)
        {
            var active = Enumerable.Range(0, rows.Length).Where(r => !rows[r].Done);
            // Without a mask input, padding would be attended to: rows of equal length (equal prompt length) run together.
            var groups = _hasMask ? [active.ToArray()] : active.GroupBy(r => prompts[r].Length).Select(g => g.ToArray()).ToArray();
            foreach (var group in groups)
            {
                int length = group.Max(r => prompts[r].Length + rows[r].Tokens.Count);
                var ids = new long[group.Length * length];
                var mask = new long[group.Length * length];
                for (int g = 0; g < group.Length; g++)
                {
                    int r = group[g];
                    var sequence = prompts[r].Select(t => (long)t).Concat(rows[r].Tokens.Select(t => (long)t)).ToArray();
                    int pad = length - sequence.Length;
                    for (int t = 0; t < length; t++)
                    {
                        ids[g * length + t] = t < pad ? o.PadTokenId : sequence[t - pad];
                        mask[g * length + t] = t < pad ? 0 : 1;
                    }
                }
                using var idsValue = OrtValues.Wrap(ids, group.Length, length);
                using var maskValue = OrtValues.Wrap(mask, group.Length, length);
                var inputs = _hasMask ? new[] { idsValue, maskValue } : [idsValue];
                using var positions = _hasPositions ? OrtValues.Wrap(Positions(mask, group.Length, length, length), group.Length, length) : null;
                var names = positions is null ? inputNames : [.. inputNames, "position_ids"];
                if (positions is not null) inputs = [.. inputs, positions];
                using var outputs = _session.Run(_runOptions, names, inputs, outputNames);
                var span = outputs[0].GetTensorDataAsSpan<float>();
                int vocab = (int)OrtValues.ShapeOf(outputs[0])[2];
                for (int g = 0; g < group.Length; g++)
                    Accept(group[g], rows[group[g]], span.Slice(((g * length) + length - 1) * vocab, vocab), o, sampler);
            }
            if (rows.All(r => r.Done)) break;
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _runOptions.Dispose();
        _session.Dispose();
    }
}
