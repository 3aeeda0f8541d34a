using Microsoft.ML.OnnxRuntime;
using SafeTune.Models.Chat;
using SafeTune.Models.Generation;
using SafeTune.Models.Tokenization;
using SafeTune.Onnx;
using SafeTune.Onnx.Passes;
using SafeTune.Runtime;

namespace SafeTune.Safety.Activations;

/// <summary>
/// Reads pooled per-layer hidden states of prompts: the features an activation probe is trained on.
/// <para>
/// The per-block hidden states are found with <see cref="HiddenStateLocator"/> and exposed as outputs of a copy of the
/// model (the caller's model is not changed). Prompts run in batches, padded on the right with an attention mask when the
/// model takes one; pooling reads only real prompt tokens, never padding. With a chat template each prompt is rendered as a
/// single user message up to and including the assistant header, so no generated token is ever read. Only the pooled
/// features are kept, batch by batch, so memory stays bounded by one batch.
/// </para>
/// </summary>
public sealed class ActivationExtractor : IDisposable
{
    private readonly InferenceSession _session;
    private readonly TextTokenizer? _tokenizer;
    private readonly ChatTemplate? _template;
    private readonly string _idsInput;
    private readonly Dictionary<string, Value> _inputs = new(StringComparer.Ordinal);
    private readonly string[] _hiddenNames;
    private readonly int[] _chosen;
    private readonly int _padId;
    private readonly float[]? _query;
    private bool _disposed;

    // What a batch returns per prompt: pooled features, pooled features per layer, or every token's row of layers.
    private enum Output { Pooled, PerLayer, TokenStates }

    /// <summary>
    /// Prepares an extractor for <paramref name="model"/>. <paramref name="tokenizer"/> may be null when only
    /// pre-tokenized prompts are given (<see cref="ExtractTokens(IReadOnlyList{int[]})"/>).
    /// </summary>
    /// <exception cref="OnnxFormatException">No transformer blocks were recognised, or an input cannot be fed.</exception>
    public ActivationExtractor(Model model, TextTokenizer? tokenizer, ChatTemplate? template = null, ActivationOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        Options = options ?? new ActivationOptions();
        if (Options.BatchSize < 1) throw new UserInputException("the batch size must be at least 1.");
        if (Options.MaxLength < 1) throw new UserInputException("the maximum length must be at least 1.");
        // Prompts are cut to the maximum length, so it must not exceed what the model can read.
        if (ContextLength.Of(model, tokenizer?.Source) is int context && Options.MaxLength > context) Options = Options with { MaxLength = context };
        _tokenizer = tokenizer;
        _template = template;
        _padId = tokenizer?.PadId ?? 0;

        var copy = model.Clone("activations");
        var located = HiddenStateLocator.Locate(copy);
        if (located.Count == 0)
            throw new OnnxFormatException($"no transformer blocks were recognised in graph '{copy.Graph.Name}'.");
        _hiddenNames = [.. located.Select(h => h.Tensor.Name)];
        LayerCount = located.Count;
        Width = located.Select(h => h.Shape is { Rank: >= 2 } s ? s[-1].Value : null).FirstOrDefault(w => w is not null) is long w ? (int)w : null;

        _chosen = Options.Layers is null ? [.. Enumerable.Range(0, LayerCount)] : [.. Options.Layers.Distinct().Order()];
        if (_chosen.Length == 0) throw new UserInputException("the layer subset is empty.");
        if (_chosen.Any(l => l < 0 || l >= LayerCount))
            throw new UserInputException($"layer indices must lie in [0, {LayerCount}); got {string.Join(", ", _chosen)}.");

        if (Options.AttentionQuery is { } query)
        {
            _query = [.. query];
            if (Options.Pooling != ActivationPooling.AttentionWeighted)
                throw new UserInputException($"an attention query is only read with attention-weighted pooling, not {Options.Pooling}.");
            if (_query.Any(v => !float.IsFinite(v))) throw new UserInputException("the attention query has a value that is not finite.");
            if (FeatureLength is int f && f != _query.Length) throw QueryMismatch(f);
        }

        var read = _chosen.Select(l => _hiddenNames[l]).ToArray();
        PassRunner.Run(copy, new ExposeValuesPass(read));
        KeepOnly(copy, read);

        foreach (var v in copy.Graph.Inputs.Where(v => !v.IsInitializer)) _inputs[v.Name] = v;
        _idsInput = _inputs.ContainsKey("input_ids") ? "input_ids"
            : _inputs.Values.FirstOrDefault(v => v.ElementType.IsInteger() && v.Name is not ("attention_mask" or "token_type_ids" or "position_ids"))?.Name
            ?? throw new OnnxFormatException("the model has no integer token-id input.");
        HasAttentionMask = _inputs.ContainsKey("attention_mask");
        _session = SessionFactory.Create(copy, Options.Session);
    }

    /// <summary>The options in use.</summary>
    public ActivationOptions Options { get; }

    /// <summary>The number of transformer blocks found.</summary>
    public int LayerCount { get; }

    /// <summary>The hidden width, when the model declares it; otherwise known after the first batch.</summary>
    public int? Width { get; private set; }

    /// <summary>
    /// The length of a feature row: the hidden width, or the width times the number of chosen layers when the pooling
    /// concatenates layers (<see cref="ActivationPooling.MeanTokensConcatLayers"/>, <see cref="ActivationPooling.AttentionWeighted"/>);
    /// null while the width is unknown.
    /// </summary>
    public int? FeatureLength => Width * (ConcatenatesLayers ? _chosen.Length : 1);

    private bool ConcatenatesLayers => Options.Pooling is ActivationPooling.MeanTokensConcatLayers or ActivationPooling.AttentionWeighted;

    /// <summary>The names of the hidden-state tensors, one per layer, in layer order.</summary>
    public IReadOnlyList<string> HiddenStateNames => _hiddenNames;

    /// <summary>The layers averaged into the features, ascending.</summary>
    public IReadOnlyList<int> Layers => _chosen;

    /// <summary>True when the model takes an <c>attention_mask</c> input.</summary>
    public bool HasAttentionMask { get; }

    /// <summary>
    /// The token ids read for a prompt: rendered with the chat template as one user message when there is one (special
    /// tokens come from the template), else the raw text with the tokenizer's special tokens; truncated to
    /// <see cref="ActivationOptions.MaxLength"/>.
    /// </summary>
    public int[] Tokenize(string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var tokenizer = _tokenizer ?? throw new InvalidOperationException("this extractor has no tokenizer; pass token ids instead.");
        int max = Options.MaxLength;
        // A prompt far longer than any max-length tokens could hold is cut before tokenizing, keeping the part that is read.
        long maxChars = (long)max * ContextLength.MaxCharsPerToken;
        if (prompt.Length > maxChars) prompt = _template is not null ? prompt[^(int)maxChars..] : prompt[..(int)maxChars];
        if (_template is not null)
        {
            var ids = tokenizer.Encode(_template.RenderPrompt([ChatMessage.User(prompt)]), addSpecialTokens: false);
            return ids.Length <= max ? ids : ids[^max..];
        }
        var raw = tokenizer.Encode(prompt, addSpecialTokens: true);
        if (raw.Length <= max) return raw;
        // Keep a closing special token (such as [SEP]) when the text is cut.
        var cut = raw[..max];
        if (tokenizer.IsSpecial(raw[^1])) cut[^1] = raw[^1];
        return cut;
    }

    /// <summary>Pooled features of <paramref name="prompts"/>: one row of <see cref="FeatureLength"/> floats per prompt.</summary>
    public float[][] Extract(IReadOnlyList<string> prompts)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        var result = new float[prompts.Count][];
        Extract(prompts, (i, f) => result[i] = f);
        return result;
    }

    /// <summary>Streams pooled features to <paramref name="sink"/> (prompt index, features), one batch at a time.</summary>
    public void Extract(IReadOnlyList<string> prompts, Action<int, float[]> sink)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(sink);
        // Tokenize lazily per batch so only one batch of ids is held.
        Run(prompts.Count, i => Tokenize(prompts[i]), sink, Output.Pooled);
    }

    /// <summary>Pooled features of pre-tokenized prompts (truncated to <see cref="ActivationOptions.MaxLength"/>, keeping the start).</summary>
    public float[][] ExtractTokens(IReadOnlyList<int[]> prompts)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        var result = new float[prompts.Count][];
        ExtractTokens(prompts, (i, f) => result[i] = f);
        return result;
    }

    /// <summary>Streams pooled features of pre-tokenized prompts to <paramref name="sink"/> (prompt index, features).</summary>
    public void ExtractTokens(IReadOnlyList<int[]> prompts, Action<int, float[]> sink)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(sink);
        Run(prompts.Count, i => prompts[i].Length <= Options.MaxLength ? prompts[i] : prompts[i][..Options.MaxLength], sink, Output.Pooled);
    }

    /// <summary>
    /// Every prompt token's hidden states, the chosen layers concatenated in layer order: for prompt i, a row of
    /// <see cref="Layers"/>.Count × <see cref="Width"/> floats per token (as read, truncated like
    /// <see cref="Tokenize"/>), rows one after another. What attention-weighted pooling weighs, and what its query is fitted
    /// on; no query is needed.
    /// </summary>
    public void ExtractTokenStates(IReadOnlyList<string> prompts, Action<int, float[]> sink)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(sink);
        Run(prompts.Count, i => Tokenize(prompts[i]), sink, Output.TokenStates);
    }

    /// <summary>
    /// Pooled features of each chosen layer kept apart: row i holds <see cref="Layers"/>.Count blocks of
    /// <see cref="Width"/> floats, in layer order (the pooling over tokens applied, the mean over layers not). Averaging the
    /// blocks of a row gives <see cref="Extract(IReadOnlyList{string})"/>'s row (with concatenated layers, the row itself);
    /// one pass serves every layer subset.
    /// </summary>
    public float[][] ExtractPerLayer(IReadOnlyList<string> prompts)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        var result = new float[prompts.Count][];
        if (Options.Pooling == ActivationPooling.AttentionWeighted)
            throw new InvalidOperationException("attention-weighted features are pooled over all chosen layers at once; read them with Extract.");
        Run(prompts.Count, i => Tokenize(prompts[i]), (i, f) => result[i] = f, Output.PerLayer);
        return result;
    }

    /// <summary>Pooled features as one row-major array of <c>n × width</c> floats.</summary>
    public float[] ExtractFlat(IReadOnlyList<string> prompts, out int width)
    {
        var rows = Extract(prompts);
        width = rows.Length > 0 ? rows[0].Length : FeatureLength ?? 0;
        var flat = new float[rows.Length * width];
        for (int i = 0; i < rows.Length; i++) rows[i].CopyTo(flat, i * width);
        return flat;
    }

    private void Run(int count, Func<int, int[]> ids, Action<int, float[]> sink, Output output)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (output == Output.Pooled && Options.Pooling == ActivationPooling.AttentionWeighted && _query is null)
            throw new InvalidOperationException("attention-weighted pooling needs a query (ActivationOptions.AttentionQuery); token states need none.");
        bool equalLengths = !HasAttentionMask && Options.EqualLengthBatchesWithoutMask;
        var batch = new List<(int index, int[] ids)>(Options.BatchSize);
        for (int start = 0; start < count; start += Options.BatchSize)
        {
            batch.Clear();
            for (int i = start; i < Math.Min(count, start + Options.BatchSize); i++)
            {
                var t = ids(i);
                if (t.Length == 0) throw new UserInputException($"prompt {i} has no tokens.");
                batch.Add((i, t));
            }
            if (!equalLengths) { RunBatch(batch, sink, output); continue; }
            foreach (var group in batch.GroupBy(b => b.ids.Length)) RunBatch([.. group], sink, output);
        }
    }

    private void RunBatch(List<(int index, int[] ids)> batch, Action<int, float[]> sink, Output output)
    {
        bool perLayer = output == Output.PerLayer || ConcatenatesLayers;
        bool tokenRows = output == Output.TokenStates || Options.Pooling == ActivationPooling.AttentionWeighted;
        int b = batch.Count, len = batch.Max(x => x.ids.Length);
        var lengths = batch.Select(x => x.ids.Length).ToArray();
        using var bag = new OrtValueBag();
        var names = new List<string>();
        var values = new List<OrtValue>();
        foreach (var (name, v) in _inputs)
        {
            var value = name switch
            {
                _ when name == _idsInput => Ints(v, b, len, (r, t) => t < lengths[r] ? batch[r].ids[t] : _padId),
                "attention_mask" => Ints(v, b, len, (r, t) => t < lengths[r] ? 1 : 0),
                "token_type_ids" => Ints(v, b, len, (_, _) => 0),
                "position_ids" => Ints(v, b, len, (_, t) => t),
                "use_cache_branch" => OrtValues.Zeros(v.ElementType, 1),
                _ when v.ElementType.IsFloatingPoint() && v.Shape is { Rank: >= 3 } s => OrtValues.Zeros(v.ElementType, EmptyPast(s, b)),
                _ => throw new OnnxFormatException($"cannot feed model input '{v.Name}' ({v.TypeString}) when reading activations."),
            };
            names.Add(name);
            values.Add(bag.Add(name, value));
        }
        var outNames = _chosen.Select(l => _hiddenNames[l]).ToArray();
        using var runOptions = new RunOptions();
        using var outputs = _session.Run(runOptions, names, values, outNames);

        double[][] acc = [];
        var states = tokenRows ? batch.Select(x => new float[0]).ToArray() : [];
        for (int k = 0; k < outNames.Length; k++)
        {
            var o = outputs[k];
            var shape = OrtValues.ShapeOf(o);
            int d = (int)shape[^1];
            long rows = shape.Length == 3 ? shape[1] : shape[0] / b;
            if (shape.Length is not (2 or 3) || rows < len || (shape.Length == 3 && shape[0] != b))
                throw new OnnxFormatException($"hidden state '{outNames[k]}' has shape [{string.Join(", ", shape)}], not [{b}, {len}, width].");
            if (Width is null) Width = d;
            else if (Width != d) throw new OnnxFormatException($"hidden state '{outNames[k]}' has width {d}, not {Width}.");
            var data = ReadFloats(o);
            if (tokenRows)
            {
                // Each token's row holds the chosen layers one after another: layer k's state goes to columns k*d .. k*d+d.
                int f = d * outNames.Length;
                for (int r = 0; r < b; r++)
                {
                    if (k == 0) states[r] = new float[lengths[r] * f];
                    for (int t = 0; t < lengths[r]; t++)
                        data.Slice((int)(((long)r * rows + t) * d), d).CopyTo(states[r].AsSpan(t * f + k * d, d));
                }
                continue;
            }
            if (acc.Length == 0) acc = [.. Enumerable.Range(0, b).Select(_ => new double[perLayer ? d * outNames.Length : d])];
            for (int r = 0; r < b; r++)
            {
                var row = perLayer ? acc[r].AsSpan(k * d, d) : acc[r];
                int n = lengths[r];
                (int from, int to) = Options.Pooling == ActivationPooling.LastToken ? (n - 1, n) : (0, n);
                double scale = 1.0 / ((to - from) * (perLayer ? 1.0 : outNames.Length));
                for (int t = from; t < to; t++)
                {
                    var x = data.Slice((int)(((long)r * rows + t) * d), d);
                    for (int j = 0; j < d; j++) row[j] += x[j] * scale;
                }
            }
        }
        if (!tokenRows)
        {
            for (int r = 0; r < b; r++) sink(batch[r].index, [.. acc[r].Select(x => (float)x)]);
            return;
        }
        if (output == Output.TokenStates)
        {
            for (int r = 0; r < b; r++) sink(batch[r].index, states[r]);
            return;
        }
        var query = _query!;
        if (FeatureLength is int features && query.Length != features) throw QueryMismatch(features);
        for (int r = 0; r < b; r++) sink(batch[r].index, AttentionPool.Pool(states[r], query));
    }

    private UserInputException QueryMismatch(int features) =>
        new($"the attention query has {_query!.Length} values; layers {string.Join(", ", _chosen)} of width {Width} give {features} features per token.");

    private static OrtValue Ints(Value input, int rows, int cols, Func<int, int, long> at)
    {
        var v = OrtValues.Zeros(input.ElementType, rows, cols);
        try
        {
            switch (input.ElementType)
            {
                case ElementType.Int64: Fill(v.GetTensorMutableDataAsSpan<long>(), x => x); break;
                case ElementType.Int32: Fill(v.GetTensorMutableDataAsSpan<int>(), x => (int)x); break;
                case ElementType.Bool: Fill(v.GetTensorMutableDataAsSpan<bool>(), x => x != 0); break;
                case ElementType.Float: Fill(v.GetTensorMutableDataAsSpan<float>(), x => x); break;
                default: throw new OnnxFormatException($"cannot feed model input '{input.Name}' of type {input.TypeString}.");
            }
            return v;
        }
        catch
        {
            v.Dispose();
            throw;
        }

        void Fill<T>(Span<T> span, Func<long, T> convert)
        {
            for (int r = 0; r < rows; r++)
                for (int t = 0; t < cols; t++) span[r * cols + t] = convert(at(r, t));
        }
    }

    /// <summary>An empty key/value cache input: the batch first, known sizes as declared, the rest (the past length) 0.</summary>
    private static long[] EmptyPast(Shape s, int batch) =>
        [.. s.Dims.Select((d, i) => i == 0 ? batch : d.Value ?? 0)];

    private static ReadOnlySpan<float> ReadFloats(OrtValue v) => v.GetTensorTypeAndShape().ElementDataType switch
    {
        Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float => v.GetTensorDataAsSpan<float>(),
        Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float16 => ToFloats(v.GetTensorDataAsSpan<Float16>(), h => h.ToFloat()),
        Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.BFloat16 => ToFloats(v.GetTensorDataAsSpan<BFloat16>(), h => h.ToFloat()),
        var t => throw new OnnxFormatException($"hidden states of element type {t} are not supported."),
    };

    private static float[] ToFloats<T>(ReadOnlySpan<T> data, Func<T, float> convert)
    {
        var r = new float[data.Length];
        for (int i = 0; i < r.Length; i++) r[i] = convert(data[i]);
        return r;
    }

    /// <summary>
    /// Makes <paramref name="keep"/> the only graph outputs and drops the nodes no longer needed (such as the language-model
    /// head), so a run computes and allocates nothing the features do not use. Graphs with subgraphs are left whole.
    /// </summary>
    private static void KeepOnly(Model model, string[] keep)
    {
        var g = model.Graph;
        foreach (var o in g.Outputs.Where(o => !keep.Contains(o.Name)).ToList()) g.RemoveOutput(o);
        g.RemoveUnusedNodes();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _session.Dispose();
    }
}
