using System.Diagnostics;
using SafeTune.Autodiff.Lora;
using SafeTune.Models;
using SafeTune.Onnx;
using SafeTune.Runtime;
using SafeTune.Runtime.Training;

namespace SafeTune.Safety.Critics.Local;

/// <summary>Progress of building the local judge.</summary>
/// <param name="Stage"><c>data</c>, <c>train</c>, <c>evaluate</c>, <c>save</c> or <c>loaded</c>.</param>
/// <param name="Step">The optimizer step during <c>train</c>, pairs scored during <c>evaluate</c>, else 0.</param>
/// <param name="Total">The number of optimizer steps (or pairs to score).</param>
/// <param name="Loss">The last step's loss during <c>train</c>, else NaN.</param>
public sealed record LocalJudgeProgress(string Stage, int Step, int Total, double Loss);

/// <summary>What <see cref="LocalJudgeTrainer.Train"/> produced.</summary>
/// <param name="Model">The classifier with the adapters merged: the plain encoder graph plus pooling and head.</param>
/// <param name="Losses">The loss of every step, computed before that step's update.</param>
/// <param name="Seconds">Wall-clock seconds of the training loop (graph building included).</param>
/// <param name="TrainableParameters">The number of trained values (adapters and head).</param>
public sealed record LocalJudgeTrainingResult(Model Model, IReadOnlyList<double> Losses, double Seconds, long TrainableParameters);

/// <summary>
/// Fine-tunes the harm classifier with SafeTune's training engine: LoRA adapters on the chosen encoder layers plus the
/// head trained in full, token cross-entropy on one label per pair, AdamW with linear warm-up and cosine decay,
/// gradient clipping, batches drawn from per-epoch shuffles of a seeded generator, a fixed number of ONNX Runtime
/// threads. The adapters are merged at the end, so the result is a plain graph. The same inputs give bit-identical
/// weights on the same machine.
/// </summary>
public static class LocalJudgeTrainer
{
    /// <summary>Trains on <paramref name="examples"/> (encoded pairs with label 1 = harmful, 0 = not).</summary>
    public static LocalJudgeTrainingResult Train(Model encoder, JudgePairEncoder pairs, IReadOnlyList<(EncodedPair Pair, long Label)> examples,
        LocalJudgeRecipe recipe, IProgress<LocalJudgeProgress>? progress = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        ArgumentNullException.ThrowIfNull(pairs);
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(recipe);
        recipe.Validate();
        if (examples.Count == 0) throw new UserInputException("the judge has no training pairs.");
        var clock = Stopwatch.StartNew();
        var t = recipe.Training;

        var model = HarmClassifierGraph.Build(encoder, recipe.HeadSeed);
        var lora = LoraModel.Wrap(model, new LoraOptions { Rank = recipe.Lora.Rank, Alpha = recipe.Lora.Alpha, Pattern = recipe.Lora.Pattern, Seed = recipe.Lora.Seed }, copy: false);
        List<string> trainable = [.. lora.TrainableParameters, HarmClassifierGraph.HeadWeight, HarmClassifierGraph.HeadBias];
        long count = trainable.Sum(n => model.Graph.FindInitializer(n)!.Initializer!.ElementCount);

        var options = new TrainingOptions
        {
            Runtime = new SessionConfig { IntraOpThreads = t.Threads },
            Trainable = trainable,
            Optimizer = new OptimizerConfig { Kind = OptimizerKind.AdamW, LearningRate = t.LearningRate, WeightDecay = t.WeightDecay },
        };
        var schedule = new CosineSchedule(t.LearningRate, t.WarmupSteps, t.Steps, t.MinLearningRate);
        using var order = RandomOrder.Epochs(t.Seed, examples.Count);
        using var session = TrainingSession.Create(model, options);
        var loop = TrainingLoop.Run(session, new TrainingLoopOptions
        {
            Steps = t.Steps,
            Schedule = schedule,
            ClipNorm = t.ClipNorm > 0 ? t.ClipNorm : null,
            What = "the judge's training",
        }, _ =>
        {
            var rows = new List<EncodedPair>(t.BatchSize);
            var labels = new List<long>(t.BatchSize);
            for (int r = 0; r < t.BatchSize; r++)
            {
                order.MoveNext();
                var (pair, label) = examples[order.Current];
                rows.Add(pair);
                labels.Add(label);
            }
            return session.TrainStep(pairs.Batch(rows, labels));
        }, done => progress?.Report(new LocalJudgeProgress("train", (int)done.Step + 1, t.Steps, done.Loss)), cancellation);
        if (loop.Cancelled) cancellation.ThrowIfCancellationRequested();
        var merged = lora.Merge(session.CurrentModel());
        merged.Graph.SortTopologically();
        return new LocalJudgeTrainingResult(merged, loop.Losses, clock.Elapsed.TotalSeconds, count);
    }
}
