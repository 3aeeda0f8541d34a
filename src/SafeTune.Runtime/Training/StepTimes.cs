namespace SafeTune.Runtime.Training;

/// <summary>Summaries of a training run's step times.</summary>
internal static class StepTimes
{
    /// <summary>
    /// The median of <paramref name="milliseconds"/> after the first three steps (which pay for allocation and graph
    /// optimisation), or of all of them when there are three or fewer; 0 when there are none.
    /// </summary>
    public static double SteadyMedian(IReadOnlyList<double> milliseconds)
    {
        ArgumentNullException.ThrowIfNull(milliseconds);
        var s = (milliseconds.Count > 3 ? milliseconds.Skip(3) : milliseconds).Order().ToList();
        if (s.Count == 0) return 0;
        return s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2;
    }
}
