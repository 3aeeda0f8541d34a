using SafeTune.Models.Chat;
using SafeTune.Models.Tokenization;
using SafeTune.Onnx;
using SafeTune.Safety.Activations;
using SafeTune.Safety.Data;
using SafeTune.Safety.Metrics;

namespace SafeTune.Safety.Probes;

/// <summary>How a probe head is fitted on pooled features.</summary>
public sealed record ProbeHeadOptions
{
    /// <summary>Logistic regression (the default) or the paper's MLP, d -> hidden -> ReLU -> 2.</summary>
    public ProbeHeadKind Head { get; init; } = ProbeHeadKind.Logistic;
    /// <summary>Logistic head: regularisation strengths tried by cross-validation.</summary>
    public IReadOnlyList<double> Lambdas { get; init; } = [1e-4, 1e-3, 1e-2, 1e-1];
    /// <summary>Logistic head: cross-validation folds.</summary>
    public int Folds { get; init; } = 5;
    /// <summary>MLP head: training options (its <see cref="MlpTrainOptions.Seed"/> is replaced by <see cref="Seed"/>).</summary>
    public MlpTrainOptions Mlp { get; init; } = new();
    /// <summary>
    /// When set, a stratified share <see cref="CalibrationFraction"/> of the prompts is held out before fitting, and the
    /// threshold is the largest one that reaches this recall on it (<see cref="BinaryMetrics.ThresholdForRecall"/>).
    /// When null the threshold is 0.5 and every prompt trains the head.
    /// </summary>
    public double? TargetRecall { get; init; }
    /// <summary>The share of each class held out for threshold calibration.</summary>
    public double CalibrationFraction { get; init; } = 0.2;
    /// <summary>Seed of the splits (folds, calibration, MLP validation) and the MLP's initial weights.</summary>
    public int Seed { get; init; }
}

/// <summary>A head fitted by <see cref="ProbeTraining.FitHead"/>.</summary>
/// <param name="Head">The head.</param>
/// <param name="Threshold">The decision threshold (0.5 unless calibrated).</param>
/// <param name="Calibration">The calibration, when a target recall was asked for.</param>
/// <param name="CrossValidation">Logistic head: the cross-validation that chose lambda.</param>
/// <param name="Mlp">MLP head: what the AdamW training did.</param>
/// <param name="Attention">Attention-weighted pooling: how its query was fitted.</param>
public sealed record FittedHead(ProbeHead Head, double Threshold, ProbeCalibration? Calibration, CrossValidationResult? CrossValidation, MlpTrainResult? Mlp,
    AttentionFit? Attention = null);

/// <summary>Options for training an activation probe.</summary>
public sealed record ProbeTrainOptions
{
    /// <summary>The ONNX model whose prompt activations are read.</summary>
    public required string ModelPath { get; init; }
    /// <summary>The tokenizer spec.</summary>
    public required string Tokenizer { get; init; }
    /// <summary>The chat template that renders each prompt as one user message (see <see cref="TemplateChoice.Resolve"/>); null for raw text.</summary>
    public ChatTemplate? ChatTemplate { get; init; }
    /// <summary>Prompt files of harmful requests (CSV, JSONL, TXT; FILE:COLUMN to name the column).</summary>
    public required IReadOnlyList<string> Harmful { get; init; }
    /// <summary>Prompt files of harmless requests.</summary>
    public required IReadOnlyList<string> Harmless { get; init; }
    /// <summary>Layers to read; null for all.</summary>
    public IReadOnlyList<int>? Layers { get; init; }
    /// <summary>How the hidden states are reduced to one feature vector (over prompt tokens, then layers, by default).</summary>
    public ActivationPooling Pooling { get; init; } = ActivationPooling.MeanTokensThenLayers;
    /// <summary>Prompt length limit.</summary>
    public int MaxLength { get; init; } = 128;
    /// <summary>With <see cref="ActivationPooling.AttentionWeighted"/> pooling: how its query is fitted (the seed is <see cref="ProbeHeadOptions.Seed"/>).</summary>
    public AttentionFitOptions Attention { get; init; } = new();
    /// <summary>The head and its fitting.</summary>
    public ProbeHeadOptions Fit { get; init; } = new();
    /// <summary>
    /// Harmful prompt files of a calibration set worded unlike the training prompts (a transfer set). With
    /// <see cref="ProbeHeadOptions.TargetRecall"/>, every training prompt fits the head and the threshold is set to reach
    /// the target recall on these prompts instead of on a held-out split of the training pools. Empty: the split.
    /// </summary>
    public IReadOnlyList<string> CalibrationHarmful { get; init; } = [];
    /// <summary>Harmless prompt files of the calibration set (for the false-positive rate recorded beside the threshold).</summary>
    public IReadOnlyList<string> CalibrationHarmless { get; init; } = [];
}

/// <summary>What <see cref="ProbeTraining.Train"/> produced.</summary>
/// <param name="Probe">The probe.</param>
/// <param name="Fitted">The fitted head with its diagnostics.</param>
/// <param name="Harmful">Harmful prompts used (after deduplication).</param>
/// <param name="Harmless">Harmless prompts used.</param>
/// <param name="Duplicates">Prompts dropped as repeats within a class.</param>
/// <param name="Conflicts">Distinct texts dropped because they appear on both sides.</param>
public sealed record ProbeTrainResult(ProbeFile Probe, FittedHead Fitted, int Harmful, int Harmless, int Duplicates, int Conflicts);

/// <summary>Progress of probe training or scoring.</summary>
/// <param name="Stage"><c>activations</c> while prompts run through the model, <c>attention</c> while the query of
/// attention-weighted pooling is fitted, <c>fit</c> while the head trains.</param>
/// <param name="Done">Prompts done (activations) or 0 (fit).</param>
/// <param name="Total">Prompts in all.</param>
public sealed record ProbeProgress(string Stage, int Done, int Total);

/// <summary>What a probe scores on a labelled set.</summary>
/// <param name="Auroc">Area under the ROC curve.</param>
/// <param name="TprAt1PctFpr">The best recall at a false-positive rate of at most 1%.</param>
/// <param name="TprAt5PctFpr">The best recall at a false-positive rate of at most 5%.</param>
/// <param name="Accuracy">Accuracy at the probe's threshold.</param>
/// <param name="Ece">Expected calibration error (10 bins).</param>
/// <param name="Harmful">Harmful prompts.</param>
/// <param name="Harmless">Harmless prompts.</param>
/// <param name="Threshold">The probe's threshold.</param>
/// <param name="Recall">Recall at the threshold.</param>
/// <param name="FalsePositiveRate">False-positive rate at the threshold.</param>
public sealed record ProbeMetrics(double Auroc, double TprAt1PctFpr, double TprAt5PctFpr, double Accuracy, double Ece, int Harmful, int Harmless,
    double Threshold, double Recall, double FalsePositiveRate)
{
    /// <summary>Computes the metrics of harm probabilities against labels (true = harmful).</summary>
    /// <exception cref="UserInputException">A class is absent or the lengths differ.</exception>
    public static ProbeMetrics Of(ReadOnlySpan<double> scores, ReadOnlySpan<bool> labels, double threshold)
    {
        int harmful = 0;
        foreach (var l in labels) if (l) harmful++;
        return new ProbeMetrics(
            BinaryMetrics.Auroc(scores, labels), BinaryMetrics.TprAtFpr(scores, labels, 0.01), BinaryMetrics.TprAtFpr(scores, labels, 0.05),
            BinaryMetrics.Accuracy(scores, labels, threshold), BinaryMetrics.ExpectedCalibrationError(scores, labels), harmful, labels.Length - harmful,
            threshold, BinaryMetrics.Recall(scores, labels, threshold), BinaryMetrics.FalsePositiveRate(scores, labels, threshold));
    }
}

/// <summary>A probe's scores on a labelled set, with their metrics.</summary>
/// <param name="Metrics">The metrics.</param>
/// <param name="Scores">Harm probabilities: the harmful prompts first, then the harmless ones.</param>
/// <param name="Labels">True for the harmful prompts.</param>
public sealed record ProbeEvaluation(ProbeMetrics Metrics, IReadOnlyList<double> Scores, IReadOnlyList<bool> Labels);

/// <summary>Trains, applies and evaluates activation probes.</summary>
public static class ProbeTraining
{
    /// <summary>
    /// Reads the prompt files, drops duplicates by normalised text (<see cref="PromptText.Deduplicate"/>), extracts pooled
    /// features (for attention-weighted pooling, every token's states, then the query, <see cref="FitAttentionPooling"/>),
    /// fits the head (<see cref="FitHead"/>) and returns the probe.
    /// </summary>
    /// <exception cref="InvalidDataException">A file is unreadable, or too few prompts remain.</exception>
    public static ProbeTrainResult Train(ProbeTrainOptions o, IProgress<ProbeProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(o);
        var dedup = PromptText.Deduplicate(o.Harmful.SelectMany(PromptFile.Read), o.Harmless.SelectMany(PromptFile.Read));
        var harmful = dedup.Harmful;
        var harmless = dedup.Harmless;
        int needed = Math.Max(o.Fit.Folds, 2);
        if (harmful.Count < needed || harmless.Count < needed)
            throw new InvalidDataException($"need at least {needed} harmful and {needed} harmless prompts, got {harmful.Count} and {harmless.Count}.");
        bool external = o.CalibrationHarmful.Count > 0;
        if (external && o.Fit.TargetRecall is null) throw new UserInputException("a calibration set needs a target recall.");
        if (external && o.CalibrationHarmless.Count == 0) throw new UserInputException("a calibration set needs harmless prompts as well as harmful ones.");
        bool[] y = [.. harmful.Select(_ => true), .. harmless.Select(_ => false)];
        var fit = external ? o.Fit with { TargetRecall = null } : o.Fit;
        using var extractor = CreateExtractor(o.ModelPath, o.Tokenizer, o.ChatTemplate, o.Layers, o.Pooling, o.MaxLength);
        AttentionFit? attention = null;
        float[][] x;
        Func<IReadOnlyList<string>, float[][]> features;
        if (o.Pooling == ActivationPooling.AttentionWeighted)
        {
            // The query is fitted first, on every token's row of layers; the head then reads the prompts pooled with it,
            // and more prompts (a calibration set) are pooled from their token rows the same way.
            var states = ExtractTokenStates(extractor, [.. harmful, .. harmless], progress);
            progress?.Report(new ProbeProgress("attention", 0, states.Length));
            int length = extractor.FeatureLength ?? throw new InvalidOperationException("the hidden width is unknown after reading the prompts.");
            (attention, x) = FitAttentionPooling(states, length, y, fit, o.Attention);
            var query = attention.Query;
            features = prompts => [.. ExtractTokenStates(extractor, prompts, progress).Select(h => AttentionPool.Pool(h, query))];
        }
        else
        {
            features = prompts => Extract(extractor, prompts, progress);
            x = features([.. harmful, .. harmless]);
        }
        progress?.Report(new ProbeProgress("fit", 0, x.Length));
        var fitted = FitHead(x, y, fit) with { Attention = attention };
        if (external) fitted = CalibrateOn(fitted, features, o, [.. harmful, .. harmless]);
        var probe = new ProbeFile
        {
            ModelPath = Path.GetFullPath(o.ModelPath),
            ModelSha256 = ProbeFile.HashFile(o.ModelPath),
            Tokenizer = o.Tokenizer,
            ChatTemplate = o.ChatTemplate?.Name,
            PromptFormat = TemplateChoice.PromptFormat(o.ChatTemplate),
            Layers = o.Layers,
            LayerCount = extractor.LayerCount,
            Pooling = o.Pooling,
            AttentionQuery = attention?.Query,
            MaxLength = o.MaxLength,
            Threshold = fitted.Threshold,
            Calibration = fitted.Calibration,
            Head = fitted.Head,
        };
        return new ProbeTrainResult(probe, fitted, harmful.Count, harmless.Count, dedup.Duplicates, dedup.Conflicts);
    }

    /// <summary>
    /// Fits the query of attention-weighted pooling (<see cref="AttentionQueryFit"/>, seeded by <paramref name="fit"/>'s
    /// seed) on every prompt's token rows (<see cref="ActivationExtractor.ExtractTokenStates"/>) and pools every prompt with
    /// it, as the extractor would (<see cref="AttentionPool"/>), ready for <see cref="FitHead"/> with the same
    /// <paramref name="fit"/>. With a target recall the query never sees the calibration split: it is the one
    /// <see cref="FitHead"/> draws for those options.
    /// </summary>
    public static (AttentionFit Fit, float[][] Pooled) FitAttentionPooling(IReadOnlyList<float[]> states, int features, IReadOnlyList<bool> y,
        ProbeHeadOptions fit, AttentionFitOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(states);
        ArgumentNullException.ThrowIfNull(y);
        ArgumentNullException.ThrowIfNull(fit);
        if (states.Count != y.Count) throw new UserInputException("the prompts and the labels differ in number");
        var rows = fit.TargetRecall is not null
            ? Splits.Stratified(y, fit.CalibrationFraction, new Random(fit.Seed)).Train
            : [.. Enumerable.Range(0, y.Count)];
        var attention = AttentionQueryFit.Fit([.. rows.Select(i => states[i])], features, [.. rows.Select(i => y[i])], (options ?? new()) with { Seed = fit.Seed });
        return (attention, [.. states.Select(h => AttentionPool.Pool(h, attention.Query))]);
    }

    /// <summary>
    /// Fits a head on pooled features: logistic (lambda by stratified k-fold cross-validation) or MLP (AdamW with early
    /// stopping on its own validation split). With <see cref="ProbeHeadOptions.TargetRecall"/> a stratified calibration
    /// split is held out first and the threshold calibrated on it.
    /// </summary>
    public static FittedHead FitHead(IReadOnlyList<float[]> x, IReadOnlyList<bool> y, ProbeHeadOptions o)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        ArgumentNullException.ThrowIfNull(o);
        if (x.Count != y.Count) throw new UserInputException("x and y differ in length");
        var rng = new Random(o.Seed);
        List<int> fitIdx, calIdx;
        if (o.TargetRecall is { } recall)
        {
            if (!(recall > 0 && recall <= 1)) throw new UserInputException($"the target recall must lie in (0, 1], not {recall}.");
            if (!(o.CalibrationFraction > 0 && o.CalibrationFraction < 1)) throw new UserInputException("the calibration fraction must lie in (0, 1).");
            (fitIdx, calIdx) = Splits.Stratified(y, o.CalibrationFraction, rng);
        }
        else (fitIdx, calIdx) = ([.. Enumerable.Range(0, x.Count)], []);

        var fx = fitIdx.Select(i => x[i]).ToList();
        var fy = fitIdx.Select(i => y[i]).ToList();
        CrossValidationResult? cv = null;
        MlpTrainResult? mlp = null;
        ProbeHead head;
        if (o.Head == ProbeHeadKind.Logistic)
        {
            int smaller = Math.Min(fy.Count(v => v), fy.Count(v => !v));
            cv = LogisticRegression.FitWithCrossValidation(fx, fy, o.Lambdas, Math.Min(o.Folds, smaller), o.Seed);
            head = cv.Model;
        }
        else
        {
            mlp = MlpHead.Train(fx, fy, o.Mlp with { Seed = o.Seed });
            head = mlp.Head;
        }

        if (calIdx.Count == 0) return new FittedHead(head, 0.5, null, cv, mlp);
        var scores = calIdx.Select(i => head.PredictProbability(x[i])).ToArray();
        var labels = calIdx.Select(i => y[i]).ToArray();
        double threshold = BinaryMetrics.ThresholdForRecall(scores, labels, o.TargetRecall!.Value);
        var calibration = new ProbeCalibration(o.TargetRecall.Value, BinaryMetrics.Recall(scores, labels, threshold),
            BinaryMetrics.FalsePositiveRate(scores, labels, threshold), labels.Count(l => l), labels.Count(l => !l));
        return new FittedHead(head, threshold, calibration, cv, mlp);
    }

    /// <summary>
    /// Sets the threshold on the calibration set: its prompts that are also training prompts (by normalised text) are
    /// dropped, and the threshold is the largest that reaches the target recall on the rest.
    /// </summary>
    private static FittedHead CalibrateOn(FittedHead fitted, Func<IReadOnlyList<string>, float[][]> features, ProbeTrainOptions o, IReadOnlyList<string> training)
    {
        var seen = training.Select(PromptText.Normalize).ToHashSet(StringComparer.Ordinal);
        var dedup = PromptText.Deduplicate(
            o.CalibrationHarmful.SelectMany(PromptFile.Read).Where(q => !seen.Contains(PromptText.Normalize(q))),
            o.CalibrationHarmless.SelectMany(PromptFile.Read).Where(q => !seen.Contains(PromptText.Normalize(q))));
        if (dedup.Harmful.Count == 0 || dedup.Harmless.Count == 0)
            throw new InvalidDataException("the calibration set has no harmful or no harmless prompt left once the training prompts are dropped.");
        var scores = fitted.Head.PredictProbability(features([.. dedup.Harmful, .. dedup.Harmless]));
        bool[] labels = [.. dedup.Harmful.Select(_ => true), .. dedup.Harmless.Select(_ => false)];
        double target = o.Fit.TargetRecall!.Value;
        double threshold = BinaryMetrics.ThresholdForRecall(scores, labels, target);
        var calibration = new ProbeCalibration(target, BinaryMetrics.Recall(scores, labels, threshold),
            BinaryMetrics.FalsePositiveRate(scores, labels, threshold), dedup.Harmful.Count, dedup.Harmless.Count);
        return fitted with { Threshold = threshold, Calibration = calibration };
    }

    /// <summary>Harm probabilities of prompts; the model defaults to the one recorded in the probe and must match its hash.</summary>
    public static double[] Score(ProbeFile probe, IReadOnlyList<string> prompts, string? modelPath = null, string? tokenizer = null,
        IProgress<ProbeProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(probe);
        ArgumentNullException.ThrowIfNull(prompts);
        var model = modelPath ?? probe.ModelPath;
        probe.CheckModel(model);
        using var extractor = CreateExtractor(model, tokenizer ?? probe.Tokenizer, probe.Template(tokenizer), probe.Layers, probe.Pooling, probe.MaxLength,
            attentionQuery: probe.AttentionQuery);
        return probe.Head.PredictProbability(Extract(extractor, prompts, progress));
    }

    /// <summary>AUROC, TPR at 1% and 5% FPR, accuracy at the probe's threshold and calibration error on labelled files.</summary>
    public static ProbeEvaluation Evaluate(ProbeFile probe, IReadOnlyList<string> harmfulFiles, IReadOnlyList<string> harmlessFiles, string? modelPath = null,
        string? tokenizer = null, IProgress<ProbeProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(probe);
        var harmful = harmfulFiles.SelectMany(PromptFile.Read).ToList();
        var harmless = harmlessFiles.SelectMany(PromptFile.Read).ToList();
        if (harmful.Count == 0 || harmless.Count == 0) throw new InvalidDataException("evaluation needs harmful and harmless prompts.");
        var scores = Score(probe, [.. harmful, .. harmless], modelPath, tokenizer, progress);
        bool[] labels = [.. harmful.Select(_ => true), .. harmless.Select(_ => false)];
        return new ProbeEvaluation(ProbeMetrics.Of(scores, labels, probe.Threshold), scores, labels);
    }

    /// <summary>
    /// The extractor a probe reads its features with: the model file, the tokenizer spec, the chat template (null for raw
    /// text), the layers, the pooling, the prompt length limit and, for attention-weighted pooling, its query.
    /// </summary>
    public static ActivationExtractor CreateExtractor(string modelPath, string tokenizer, ChatTemplate? chatTemplate, IReadOnlyList<int>? layers,
        ActivationPooling pooling, int maxLength, int batchSize = 16, IReadOnlyList<float>? attentionQuery = null) =>
        new(Models.Generation.DecoderFolder.LoadModel(modelPath), TokenizerLoader.Load(tokenizer), chatTemplate,
            new ActivationOptions { Layers = layers, Pooling = pooling, MaxLength = maxLength, BatchSize = batchSize, AttentionQuery = attentionQuery });

    private static float[][] ExtractTokenStates(ActivationExtractor extractor, IReadOnlyList<string> prompts, IProgress<ProbeProgress>? progress) =>
        Collect(prompts, extractor.ExtractTokenStates, progress);

    private static float[][] Extract(ActivationExtractor extractor, IReadOnlyList<string> prompts, IProgress<ProbeProgress>? progress) =>
        Collect(prompts, extractor.Extract, progress);

    // Runs an extractor's streaming method over the prompts, keeping each row and reporting progress every 16 prompts.
    private static float[][] Collect(IReadOnlyList<string> prompts, Action<IReadOnlyList<string>, Action<int, float[]>> run, IProgress<ProbeProgress>? progress)
    {
        var result = new float[prompts.Count][];
        int done = 0;
        progress?.Report(new ProbeProgress("activations", 0, prompts.Count));
        run(prompts, (i, f) =>
        {
            result[i] = f;
            if (++done % 16 == 0 || done == prompts.Count) progress?.Report(new ProbeProgress("activations", done, prompts.Count));
        });
        return result;
    }
}
