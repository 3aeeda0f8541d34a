using SafeTune.Safety.Probes;
using Spectre.Console;
using SafeTune.Runtime;

namespace SafeTune.Cli.Commands.Probe;

/// <summary>Runs probe work under a Spectre.Console progress bar (prompts through the model), or silently for <c>--json</c>.</summary>
internal static class ProbeProgressDisplay
{
    public static T Run<T>(bool quiet, Func<IProgress<ProbeProgress>?, T> work)
    {
        if (quiet) return work(null);
        T result = default!;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("activations", maxValue: 1);
                result = work(new SynchronousProgress<ProbeProgress>(p =>
                {
                    task.MaxValue = Math.Max(1, p.Total);
                    task.Value = p.Stage is "fit" or "attention" ? p.Total : p.Done;
                    task.Description = p.Stage switch
                    {
                        "fit" => "fitting the head",
                        "attention" => "fitting the attention query",
                        _ => $"activations {p.Done}/{p.Total}",
                    };
                }));
                task.Value = task.MaxValue;
            });
        return result;
    }
}
