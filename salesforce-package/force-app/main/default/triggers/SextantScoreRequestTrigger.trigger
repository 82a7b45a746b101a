trigger SextantScoreRequestTrigger on Sextant_Score_Request__e(after insert) {
    SextantScoreRequestHandler.handle(Trigger.new);
}
