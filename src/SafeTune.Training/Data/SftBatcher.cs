using SafeTune.Models.Chat;
using SafeTune.Models.Tokenization;
using SafeTune.Onnx;
using SafeTune.Runtime.Training;

namespace SafeTune.Training.Data;

/// <summary>How examples are laid out in the rows of a micro-batch.</summary>
public enum BatchLayout
{
    /// <summary>One example per row, padded on the right to the longest row of the micro-batch (or a fixed length).</summary>
    Pad,
    /// <summary>
    /// Several examples per row of a fixed length, back to back in the shuffled order; labels are masked at every example
    /// boundary. The model's causal attention still crosses boundaries (a packed example attends to the ones before it in
    /// its row) and positions run on through the row, unless the model itself takes per-example masks: packing trades that
    /// for fewer padding tokens.
    /// </summary>
    Pack,
}

/// <summary>How <see cref="SftBatcher"/> forms optimizer steps.</summary>
public sealed record BatchingOptions
{
    /// <summary>Rows per micro-batch (one forward and backward pass).</summary>
    public int MicroBatchSize { get; init; } = 8;

    /// <summary>Micro-batches per optimizer step (gradient accumulation).</summary>
    public int GradientAccumulationSteps { get; init; } = 1;

    /// <summary>Seeds the per-epoch shuffles.</summary>
    public int Seed { get; init; }

    /// <summary>False keeps the data order in every epoch.</summary>
    public bool Shuffle { get; init; } = true;

    /// <summary>Padding or packing.</summary>
    public BatchLayout Layout { get; init; } = BatchLayout.Pad;

    /// <summary>
    /// <see cref="BatchLayout.Pad"/>: null pads each micro-batch to its longest row; a value pads every micro-batch to
    /// that fixed length (fixed shapes, faster on DirectML). <see cref="BatchLayout.Pack"/>: the row length (null: the
    /// longest example). No example may be longer.
    /// </summary>
    public int? SequenceLength { get; init; }

    internal void Validate()
    {
        if (MicroBatchSize < 1) throw new UserInputException($"the micro-batch size must be at least 1 (got {MicroBatchSize}).");
        if (GradientAccumulationSteps < 1) throw new UserInputException($"gradient accumulation needs at least 1 micro-batch per step (got {GradientAccumulationSteps}).");
        if (SequenceLength is < 2) throw new UserInputException($"the sequence length must be at least 2 (got {SequenceLength}).");
    }
}

/// <summary>One example's place in a row.</summary>
/// <param name="Example">The tokenized example (with its <see cref="SftExample"/>).</param>
/// <param name="Start">Its first token's position in the row.</param>
public sealed record RowSegment(TokenizedExample Example, int Start)
{
    /// <summary>The example's id.</summary>
    public string ExampleId => Example.Id;

    /// <summary>Its token count.</summary>
    public int Length => Example.Ids.Length;

    /// <summary>How many of its tokens are prompt tokens (positions <c>Start .. Start + PromptLength - 1</c>).</summary>
    public int PromptLength => Example.PromptLength;

    /// <summary>Its response tokens: the label positions it contributes.</summary>
    public int ResponseTokens => Length - PromptLength;
}

/// <summary>The examples in one row of a micro-batch (one when padding, one or more when packing).</summary>
/// <param name="Segments">The examples, in row order.</param>
public sealed record BatchRow(IReadOnlyList<RowSegment> Segments)
{
    /// <summary>The ids of the row's examples.</summary>
    public IReadOnlyList<string> ExampleIds => [.. Segments.Select(s => s.ExampleId)];

    /// <summary>The row's examples (messages and response text, e.g. for a judge).</summary>
    public IReadOnlyList<SftExample> Examples => [.. Segments.Select(s => s.Example.Example)];

    /// <summary>The real (non-padding) tokens of the row.</summary>
    public int Length => Segments.Sum(s => s.Length);
}

/// <summary>
/// One forward/backward pass: the token batch (<c>input_ids</c>, shifted <c>labels</c> with -100 on prompts, padding and
/// example boundaries, and <c>attention_mask</c>, 1 on real tokens), per row the examples it holds, and the prompt mask.
/// </summary>
/// <param name="Tokens">int64 [rows, length] ids, labels and attention mask.</param>
/// <param name="PromptMask">int64 [rows, length]: 1 on every prompt token (everything before an example's response), 0 on
/// response tokens and padding. An activation probe reads exactly these tokens.</param>
/// <param name="Rows">What each row holds.</param>
/// <param name="ResponseTokens">The label positions that count (labels other than -100).</param>
public sealed record SftMicroBatch(TokenBatch Tokens, long[] PromptMask, IReadOnlyList<BatchRow> Rows, int ResponseTokens);

/// <summary>The micro-batches of one optimizer step.</summary>
/// <param name="Step">The step index, from 0.</param>
/// <param name="Epoch">The epoch of the step's first row, from 0 (a step may run into the next epoch).</param>
/// <param name="MicroBatches">Its micro-batches (<see cref="BatchingOptions.GradientAccumulationSteps"/> of them).</param>
public sealed record SftStep(long Step, int Epoch, IReadOnlyList<SftMicroBatch> MicroBatches)
{
    /// <summary>The label positions of the whole step.</summary>
    public int ResponseTokens => MicroBatches.Sum(m => m.ResponseTokens);

    /// <summary>
    /// The weight of micro-batch <paramref name="index"/>'s mean loss in the step's token-weighted mean: its share of the
    /// step's response tokens (pass it to <c>TrainingSession.TrainStep(batch, weight)</c>). The weights sum to 1.
    /// </summary>
    public float LossWeight(int index) => ResponseTokens == 0 ? 0f : (float)MicroBatches[index].ResponseTokens / ResponseTokens;
}

/// <summary>
/// Turns tokenized examples into optimizer steps. The rows of all epochs form one stream: epoch e is the examples in the
/// order of a permutation seeded by (seed, e) (or packed in that order), and step s takes rows
/// <c>s * R .. (s + 1) * R - 1</c> of the stream, R = micro-batch size x accumulation steps. A step is therefore a pure
/// function of its index: <see cref="GetStep"/> after a restart gives exactly the batches the killed run would have seen.
/// Not thread-safe (it caches the current epoch's plan).
/// </summary>
public sealed class SftBatcher
{
    private readonly IReadOnlyList<TokenizedExample> _examples;
    private readonly BatchingOptions _options;
    private readonly int _padId, _length;
    private readonly List<long> _epochStarts = [0]; // stream row where each epoch starts (packing varies rows per epoch)
    private (int Epoch, int[][] Rows)? _cached;

    /// <summary>Creates a batcher over <paramref name="examples"/>.</summary>
    /// <param name="examples">The examples (from <see cref="SftTokenizer.Tokenize"/>).</param>
    /// <param name="padId">The id placed in padding positions (see <see cref="PadIdOf"/>); masked, so its value only has to exist.</param>
    /// <param name="options">Sizes, seed and layout.</param>
    /// <exception cref="UserInputException">There are no examples, an option is out of range, or an example is longer than
    /// <see cref="BatchingOptions.SequenceLength"/>.</exception>
    public SftBatcher(IReadOnlyList<TokenizedExample> examples, int padId, BatchingOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(examples);
        _options = options ?? new BatchingOptions();
        _options.Validate();
        if (examples.Count == 0) throw new UserInputException("there are no examples to batch.");
        ArgumentOutOfRangeException.ThrowIfNegative(padId);
        _examples = examples;
        _padId = padId;
        int longest = examples.Max(e => e.Ids.Length);
        _length = _options.SequenceLength ?? longest;
        if (_options.SequenceLength is int fixedLength && longest > fixedLength)
        {
            var e = examples.First(x => x.Ids.Length > fixedLength);
            throw new UserInputException($"example {e.Id} has {e.Ids.Length} tokens, more than the sequence length {fixedLength}; tokenize with a maximum length of at most {fixedLength}.");
        }
    }

    /// <summary>The pad id of a tokenizer: its pad token, else its end-of-sequence token, else 0.</summary>
    public static int PadIdOf(TextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        return tokenizer.PadId ?? tokenizer.EosId ?? 0;
    }

    /// <summary>The micro-batch size, accumulation, layout and shuffling this batcher was made with.</summary>
    public BatchingOptions Options => _options;

    /// <summary>Rows per optimizer step.</summary>
    public int RowsPerStep => _options.MicroBatchSize * _options.GradientAccumulationSteps;

    /// <summary>The optimizer steps that cover <paramref name="epochs"/> whole epochs (the last one may reach into the next epoch).</summary>
    public long StepsFor(int epochs)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epochs);
        return (EpochStart(epochs) + RowsPerStep - 1) / RowsPerStep;
    }

    /// <summary>The steps of one epoch, rounded up (the first epoch's, when packing varies it slightly).</summary>
    public long StepsPerEpoch => StepsFor(1);

    /// <summary>The batches of optimizer step <paramref name="step"/> (0-based).</summary>
    public SftStep GetStep(long step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        long first = step * RowsPerStep;
        var micro = new List<SftMicroBatch>(_options.GradientAccumulationSteps);
        int epoch = EpochOf(first);
        for (int m = 0; m < _options.GradientAccumulationSteps; m++)
        {
            var rows = new int[_options.MicroBatchSize][];
            for (int r = 0; r < rows.Length; r++) rows[r] = Row(first + (long)m * _options.MicroBatchSize + r);
            micro.Add(Build(rows));
        }
        return new SftStep(step, epoch, micro);
    }

    /// <summary>Steps from <paramref name="firstStep"/> on, without end (take as many as the run needs).</summary>
    public IEnumerable<SftStep> Steps(long firstStep = 0)
    {
        for (long s = firstStep; ; s++) yield return GetStep(s);
    }

    /// <summary>The example indices of stream row <paramref name="streamRow"/>.</summary>
    private int[] Row(long streamRow)
    {
        int epoch = EpochOf(streamRow);
        return Plan(epoch)[streamRow - EpochStart(epoch)];
    }

    private int EpochOf(long streamRow)
    {
        if (_options.Layout == BatchLayout.Pad) return (int)(streamRow / _examples.Count);
        int e = 0;
        while (EpochStart(e + 1) <= streamRow) e++;
        return e;
    }

    private long EpochStart(int epoch)
    {
        if (_options.Layout == BatchLayout.Pad) return (long)epoch * _examples.Count;
        while (_epochStarts.Count <= epoch)
        {
            int e = _epochStarts.Count - 1;
            _epochStarts.Add(_epochStarts[e] + Plan(e).Length);
        }
        return _epochStarts[epoch];
    }

    /// <summary>The rows of one epoch, each a list of example indices.</summary>
    private int[][] Plan(int epoch)
    {
        if (_cached is { } c && c.Epoch == epoch) return c.Rows;
        var order = _options.Shuffle
            ? Shuffle.Permutation(_examples.Count, Shuffle.Mix((ulong)(uint)_options.Seed, (ulong)epoch))
            : [.. Enumerable.Range(0, _examples.Count)];
        int[][] rows;
        if (_options.Layout == BatchLayout.Pad) rows = [.. order.Select(i => new[] { i })];
        else
        {
            var packed = new List<int[]>();
            var current = new List<int>();
            int used = 0;
            foreach (var i in order)
            {
                int n = _examples[i].Ids.Length;
                if (used + n > _length && current.Count > 0)
                {
                    packed.Add([.. current]);
                    current.Clear();
                    used = 0;
                }
                current.Add(i);
                used += n;
            }
            if (current.Count > 0) packed.Add([.. current]);
            rows = [.. packed];
        }
        _cached = (epoch, rows);
        return rows;
    }

    private SftMicroBatch Build(int[][] rows)
    {
        int b = rows.Length;
        int t = _options.Layout == BatchLayout.Pack || _options.SequenceLength is not null
            ? _length
            : rows.Max(r => r.Sum(i => _examples[i].Ids.Length));
        var ids = new long[b * t];
        var labels = new long[b * t];
        var mask = new long[b * t];
        var prompt = new long[b * t];
        Array.Fill(ids, _padId);
        Array.Fill(labels, ChatTemplate.IgnoreIndex);
        var batchRows = new BatchRow[b];
        int responseTokens = 0;
        for (int r = 0; r < b; r++)
        {
            var segments = new List<RowSegment>(rows[r].Length);
            int at = 0;
            foreach (var i in rows[r])
            {
                var e = _examples[i];
                var exLabels = e.Labels();
                int offset = r * t + at;
                for (int k = 0; k < e.Ids.Length; k++)
                {
                    ids[offset + k] = e.Ids[k];
                    labels[offset + k] = exLabels[k];
                    mask[offset + k] = 1;
                    if (k < e.PromptLength) prompt[offset + k] = 1;
                    if (exLabels[k] != ChatTemplate.IgnoreIndex) responseTokens++;
                }
                segments.Add(new RowSegment(e, at));
                at += e.Ids.Length;
            }
            batchRows[r] = new BatchRow(segments);
        }
        return new SftMicroBatch(new TokenBatch(ids, labels, mask, b, t), prompt, batchRows, responseTokens);
    }
}
