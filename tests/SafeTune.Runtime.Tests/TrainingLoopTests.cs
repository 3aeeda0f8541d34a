using System.Text.RegularExpressions;
using SafeTune.Runtime.Training;
using SafeTune.TestSupport;

namespace SafeTune.Runtime.Tests;

/// <summary>
/// Every trainer (fit, safe fine-tuning, the local judge, the demo model) runs on <see cref="TrainingLoop"/>: the
/// optimizer step and the divergence check exist once, in its file.
/// </summary>
public sealed partial class TrainingLoopTests
{
    private const string LoopFile = "src/SafeTune.Runtime/Training/TrainingLoop.cs";

    private static IEnumerable<(string Path, string Text)> Sources() =>
        Repo.SourceFiles("src").Select(f => (Path.GetRelativePath(Repo.Root, f).Replace('\\', '/'), File.ReadAllText(f)));

    [Fact]
    public void Only_the_training_loop_steps_the_optimizer()
    {
        var callers = Sources().Where(s => s.Text.Contains(".OptimizerStep()", StringComparison.Ordinal)).Select(s => s.Path).ToList();
        Assert.Equal([LoopFile], callers);
    }

    [Fact]
    public void A_diverging_loss_has_one_exception_type_thrown_by_the_loop()
    {
        var throws = Sources().SelectMany(s => Throw().Matches(s.Text)
            .Where(m => m.Value.Contains("diverged", StringComparison.OrdinalIgnoreCase) || m.Groups[1].Value.Contains("Diverged", StringComparison.Ordinal))
            .Select(m => (s.Path, Type: m.Groups[1].Value))).ToList();
        Assert.Equal([(LoopFile, nameof(TrainingDivergedException))], throws);
        var declared = Sources().Where(s => s.Text.Contains("class TrainingDivergedException", StringComparison.Ordinal)).Select(s => s.Path).ToList();
        Assert.Equal(["src/SafeTune.Runtime/Training/TrainingDivergedException.cs"], declared);
    }

    [Fact]
    public void The_divergence_message_names_the_step_and_the_checkpoint_kept()
    {
        Assert.Equal("step 3: the loss is NaN; the demo training stopped.", new TrainingDivergedException(3, double.NaN, "the demo training").Message);
        Assert.Equal("step 7: the loss is Infinity; training stopped and the last good checkpoint (step 6) in run/checkpoints is kept.",
            new TrainingDivergedException(7, double.PositiveInfinity, checkpointDirectory: "run/checkpoints", checkpointStep: 6).Message);
    }

    /// <summary>A <c>throw new T(...)</c> statement, up to the semicolon that ends its last line.</summary>
    [GeneratedRegex(@"throw\s+new\s+([A-Za-z_.]+)\s*\(.*?;\s*$", RegexOptions.Singleline | RegexOptions.Multiline)]
    private static partial Regex Throw();
}
