trigger SextantCaseTrigger on Case(after insert, after update) {
    SextantSentimentRequests.run(Trigger.operationType, Trigger.new, Trigger.oldMap);
}
